//go:build unix

package serve

import "golang.org/x/sys/unix"

// raiseNoFile raises the soft RLIMIT_NOFILE to the hard limit: every client
// connection, platform connection and file takes a descriptor, and a
// soft limit of 1024 (the usual default) runs out long before the machine
// does. It returns the soft limit in force afterwards.
func raiseNoFile() (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		want := lim
		want.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err != nil {
			return lim.Cur, err
		}
		lim = want
	}
	return lim.Cur, nil
}

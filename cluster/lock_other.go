//go:build !unix

package cluster

// dirLock is a no-op where flock(2) does not exist.
type dirLock struct{}

func lockDir(string) (*dirLock, error) { return &dirLock{}, nil }

func (*dirLock) release() {}

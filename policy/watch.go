package policy

import (
	"time"

	"github.com/fsnotify/fsnotify"
)

// watcher reports changes in a policy directory, debounced.
//
// It watches the directory, not the files: editors replace files by
// renaming over them, and Kubernetes updates a ConfigMap volume by
// swapping its "..data" symlink, which changes no watched file. Any event
// in the directory therefore means "re-read everything"; the engine skips
// the reload when the files hash to the running version.
type watcher struct {
	w       *fsnotify.Watcher
	changed chan struct{} // one pending notice at most
	done    chan struct{}
}

func newWatcher(dir string, debounce time.Duration) (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	if err := fw.Add(dir); err != nil {
		fw.Close()
		return nil, err
	}
	w := &watcher{w: fw, changed: make(chan struct{}, 1), done: make(chan struct{})}
	go w.loop(debounce)
	return w, nil
}

func (w *watcher) loop(debounce time.Duration) {
	defer close(w.done)
	t := time.NewTimer(debounce)
	t.Stop()
	for {
		select {
		case _, ok := <-w.w.Events:
			if !ok {
				t.Stop()
				return
			}
			t.Reset(debounce)
		case _, ok := <-w.w.Errors:
			if !ok {
				t.Stop()
				return
			}
			// An overflow loses events: re-read to be sure.
			t.Reset(debounce)
		case <-t.C:
			select {
			case w.changed <- struct{}{}:
			default:
			}
		}
	}
}

func (w *watcher) close() {
	w.w.Close()
	<-w.done
}

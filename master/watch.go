package master

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"
)

// debounce lets a burst of events from one save settle into one reload.
const debounce = 100 * time.Millisecond

// watcher reports changes to one file. It watches the file's directory,
// not the file, because editors and config-management tools save by
// writing a new file and renaming it over the old one.
type watcher struct {
	w       *fsnotify.Watcher
	changed chan struct{}
}

func newWatcher(path string, log zerolog.Logger) (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watching config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		fw.Close()
		return nil, fmt.Errorf("watching config: %w", err)
	}
	if err := fw.Add(filepath.Dir(abs)); err != nil {
		fw.Close()
		return nil, fmt.Errorf("watching config directory: %w", err)
	}
	w := &watcher{w: fw, changed: make(chan struct{}, 1)}
	go w.loop(abs, log)
	return w, nil
}

func (w *watcher) loop(path string, log zerolog.Logger) {
	var timer *time.Timer
	for {
		select {
		case ev, ok := <-w.w.Events:
			if !ok {
				return
			}
			if filepath.Clean(ev.Name) != path || ev.Op == fsnotify.Chmod {
				continue
			}
			if timer == nil {
				timer = time.AfterFunc(debounce, func() {
					select {
					case w.changed <- struct{}{}:
					default:
					}
				})
			} else {
				timer.Reset(debounce)
			}
		case err, ok := <-w.w.Errors:
			if !ok {
				return
			}
			log.Warn().Err(err).Msg("config watcher")
		}
	}
}

func (w *watcher) close() { _ = w.w.Close() }

// changes is the channel a change is reported on; nil (never ready) when
// w is nil, nothing being watched.
func (w *watcher) changes() <-chan struct{} {
	if w == nil {
		return nil
	}
	return w.changed
}

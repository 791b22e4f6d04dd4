package imapstore

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/testbed"
)

// events records the folders a Watcher reports.
type events struct {
	mu  sync.Mutex
	got map[string]int
}

func (e *events) changed(folder string) {
	e.mu.Lock()
	e.got[folder]++
	e.mu.Unlock()
}

func (e *events) count(folder string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.got[folder]
}

// waitFor polls cond for up to 20 s: pushes take milliseconds, but a
// loaded CI machine must not fail the test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestWatcher(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	names := []string{"Calendar", "Calendar/Work", "Calendar/Home"}
	for _, f := range names {
		srv.CreateFolder(t, "alice", f)
		srv.SetACL(t, "alice", f, testbed.Proxy, "lr")
	}
	shared := func(f string) string { return srv.SharedName("alice", f) }
	before := runtime.NumGoroutine()
	ev := &events{got: map[string]int{}}
	w := NewWatcher(Options{Addr: srv.Addr, TLS: TLSNone, User: testbed.Proxy, Password: testbed.Password(testbed.Proxy), Timeout: 5 * time.Second}, 2, ev.changed)

	// Three wanted, two watched: the most wanted.
	w.Watch([]string{shared(names[0]), shared(names[1]), shared(names[2])})
	if got := w.Watching(); len(got) != 2 {
		t.Fatalf("watching %v, want two folders", got)
	}
	waitFor(t, "the first connection", func() bool { return ev.count(shared(names[0])) > 0 && ev.count(shared(names[1])) > 0 })
	base := ev.count(shared(names[0]))
	srv.Append(t, "alice", names[0], testbed.CalendarMessage("x", "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"))
	waitFor(t, "a push for the new message", func() bool { return ev.count(shared(names[0])) > base })
	srv.Append(t, "alice", names[2], testbed.CalendarMessage("x", "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"))
	time.Sleep(500 * time.Millisecond)
	if n := ev.count(shared(names[2])); n != 0 {
		t.Errorf("an unwatched folder was reported %d times", n)
	}

	// The wish list changes: the watch moves.
	w.Watch([]string{shared(names[2])})
	if got := w.Watching(); len(got) != 1 || got[0] != shared(names[2]) {
		t.Fatalf("watching %v after the move", got)
	}
	waitFor(t, "the moved watch", func() bool { return ev.count(shared(names[2])) > 0 })
	base = ev.count(shared(names[2]))
	srv.Append(t, "alice", names[2], testbed.CalendarMessage("x", "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"))
	waitFor(t, "a push in the moved watch", func() bool { return ev.count(shared(names[2])) > base })

	// A server restart: the watch comes back by itself and says so.
	base = ev.count(shared(names[2]))
	srv.Stop(t)
	srv.Start(t)
	waitFor(t, "the watch after a restart", func() bool { return ev.count(shared(names[2])) > base })
	base = ev.count(shared(names[2]))
	srv.Append(t, "alice", names[2], testbed.CalendarMessage("x", "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"))
	waitFor(t, "a push after the restart", func() bool { return ev.count(shared(names[2])) > base })

	w.Close()
	waitFor(t, "the watch goroutines to end", func() bool { return runtime.NumGoroutine() <= before+2 })
}

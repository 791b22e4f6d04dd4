package imapstore

import (
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/testbed"
)

// BenchmarkNotifyLatency measures push on the test bed Dovecot: the time
// from an APPEND to a folder watched with NOTIFY (the command sent) to
// Watcher's Changed being called for it, reported as ms/push.
func BenchmarkNotifyLatency(b *testing.B) {
	srv := testbed.Get(b)
	folder := aliceCalendar(b, srv)
	got := make(chan time.Time, 1)
	ready := make(chan struct{}, 1)
	w := NewWatcherWith(WatchOptions{
		Options: proxyOptions(srv),
		Changed: func(f string) {
			if f == folder {
				select {
				case got <- time.Now():
				default:
				}
			}
		},
		Resync: func() {
			select {
			case ready <- struct{}{}:
			default:
			}
		},
	})
	defer w.Close()
	w.Watch([]string{folder})
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		b.Fatal("no NOTIFY watch")
	}
	if w.Mode() != WatchNotify {
		b.Fatalf("Mode() = %q, want notify", w.Mode())
	}
	c := srv.Dial(b, "alice")
	var total time.Duration
	n := 0
	for b.Loop() {
		select {
		case <-got:
		default:
		}
		t0 := time.Now()
		cmd := c.Append("Calendar", int64(len(emptyCalendar)), nil)
		cmd.Write(emptyCalendar)
		cmd.Close()
		select {
		case t1 := <-got:
			total += t1.Sub(t0)
		case <-time.After(10 * time.Second):
			b.Fatal("no push in 10 s")
		}
		if _, err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(total.Microseconds())/float64(n)/1000, "ms/push")
}

package shared

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// MaxNotice bounds a notice's length: notices name what changed (a folder),
// they do not carry it.
const MaxNotice = 1024

// Publish sends notice on channel to every subscription of it: in Shared
// mode through Redis, reaching every replica (this one included); without
// Redis, or when Redis is unreachable, to this process's subscriptions
// only. A notice longer than MaxNotice is an error; otherwise Publish does
// not fail. Safe for concurrent use.
func (c *Client) Publish(ctx context.Context, channel, notice string) error {
	if len(notice) > MaxNotice {
		return fmt.Errorf("shared: notice of %d bytes, more than %d", len(notice), MaxNotice)
	}
	if c.shared() {
		if c.do(ctx, "publish", func(ctx context.Context) error {
			return c.rdb.Publish(ctx, c.opts.Prefix+"notice:"+channel, notice).Err()
		}) == nil {
			return nil
		}
	}
	c.fallback("publish")
	c.mu.Lock()
	var subs []*Subscription
	for s := range c.subs {
		if s.channel == channel {
			subs = append(subs, s)
		}
	}
	c.mu.Unlock()
	for _, s := range subs {
		s.deliver(notice)
	}
	return nil
}

// Subscription receives the notices of one channel and passes them to its
// function, one at a time, on a goroutine it owns. Close stops it.
type Subscription struct {
	c       *Client
	channel string
	f       func(notice string)

	in chan string
	// overflow is set when a notice was dropped because in was full; the
	// function is then given "" (anything may have changed).
	overflow atomic.Bool
	stop     chan struct{}
	done     sync.WaitGroup
	close    sync.Once
	// unsubscribe closes the Redis subscription; nil without Redis.
	unsubscribe func()
}

// Subscribe calls f with every notice published on channel from now on,
// until the Subscription is closed. f runs on one goroutine, one notice at
// a time, so it should be quick (hand work elsewhere). f is also called
// with "" when notices may have been missed: when Redis answers again after
// being unreachable (what was published meanwhile by other replicas is
// lost), and when f fell more than 256 notices behind. In Shared mode
// Subscribe waits (up to Options.Timeout) until Redis has confirmed the
// subscription; the subscription reconnects by itself when Redis comes
// back.
func (c *Client) Subscribe(ctx context.Context, channel string, f func(notice string)) *Subscription {
	s := &Subscription{c: c, channel: channel, f: f, in: make(chan string, 256), stop: make(chan struct{})}
	c.mu.Lock()
	c.subs[s] = struct{}{}
	c.mu.Unlock()
	s.done.Go(s.run)
	if c.rdb != nil {
		ps := c.rdb.Subscribe(context.WithoutCancel(ctx), c.opts.Prefix+"notice:"+channel)
		if c.shared() {
			// Errors are counted; the subscription goes on trying.
			_ = c.do(ctx, "subscribe", func(ctx context.Context) error {
				_, err := ps.Receive(ctx)
				return err
			})
		}
		ch := ps.Channel()
		s.done.Go(func() {
			for m := range ch {
				s.deliver(m.Payload)
			}
		})
		s.unsubscribe = func() { ps.Close() }
	}
	return s
}

// Close stops the subscription and waits for its goroutines; f is not
// called after Close returns. Safe to call more than once.
func (s *Subscription) Close() {
	s.close.Do(func() {
		s.c.mu.Lock()
		delete(s.c.subs, s)
		s.c.mu.Unlock()
		if s.unsubscribe != nil {
			s.unsubscribe()
		}
		close(s.stop)
		s.done.Wait()
	})
}

// deliver queues a notice for f without blocking.
func (s *Subscription) deliver(notice string) {
	select {
	case s.in <- notice:
	default:
		s.overflow.Store(true)
	}
}

// run passes the queued notices to f until Close.
func (s *Subscription) run() {
	for {
		select {
		case <-s.stop:
			return
		case n := <-s.in:
			s.f(n)
		}
		if s.overflow.Swap(false) {
			s.f("")
		}
	}
}

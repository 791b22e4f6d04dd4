package httpapi

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/fbpub/fbpub/internal/shared"
	"github.com/fbpub/fbpub/internal/testbed"
)

// TestLinkGuessingAcrossReplicas: two replicas sharing a Redis throttle
// wrong links as one: a client that just sent a wrong token through one
// replica is refused at once through the other, and the wrong tokens of
// all clients through both count against one budget per pause.
func TestLinkGuessingAcrossReplicas(t *testing.T) {
	srv := testbed.Get(t)
	seedLinks(t, srv)
	rs := testbed.StartRedis(t, nil)
	var replicas []*linkServer
	for range 2 {
		sc, err := shared.New(shared.Options{URL: rs.URL()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sc.Close() })
		replicas = append(replicas, newLinkServerShared(t, srv, sc))
	}
	// A link fetched through the first replica, before anyone guesses.
	link := replicas[0].create(t, "alice")
	if r := replicas[0].do(t, "GET", link.path(replicas[0]), "X-Forwarded-For", "192.0.2.99"); r.code != 200 {
		t.Fatalf("the link = %d", r.code)
	}
	// Tokens that name no owner are refused without asking IMAP: the
	// requests below take well under the throttle's pause of a second.
	wrong := "/freebusy/s/garbage.vfb"
	from := []string{"X-Forwarded-For", "192.0.2.50"}
	if r := replicas[0].do(t, "GET", wrong, from...); r.code != http.StatusNotFound {
		t.Fatalf("a wrong token = %d, want 404", r.code)
	}
	if r := replicas[1].do(t, "GET", wrong, from...); r.code != http.StatusTooManyRequests {
		t.Errorf("the same client through the other replica at once = %d, want 429", r.code)
	}
	for i := 1; i < maxTokenFailures; i++ {
		r := replicas[i%2].do(t, "GET", wrong, "X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i))
		if r.code != http.StatusNotFound {
			t.Fatalf("wrong token %d, from its own client = %d, want 404", i+1, r.code)
		}
	}
	for i, s := range replicas {
		if r := s.do(t, "GET", wrong, "X-Forwarded-For", "203.0.113.1"); r.code != http.StatusTooManyRequests {
			t.Errorf("a wrong token through replica %d beyond %d over both = %d, want 429", i, maxTokenFailures, r.code)
		}
	}
	// The link is not held up by the guessing, also through the replica
	// that has never resolved it: the replicas know together it is one.
	if r := replicas[1].do(t, "GET", link.path(replicas[1]), "X-Forwarded-For", "192.0.2.99"); r.code != 200 {
		t.Errorf("the link through the other replica while guessing is throttled = %d, want 200", r.code)
	}
	if r := replicas[1].do(t, "GET", wrong, "X-Forwarded-For", "203.0.113.2"); r.code != http.StatusTooManyRequests {
		t.Errorf("a wrong token after the link = %d, want 429: the pause ended too soon to tell", r.code)
	}
}

package httpapi

import (
	"net/http/httptest"
	"sync"
	"testing"
)

// TestNewRequestID checks the IDs made in batches: unique across batches
// and goroutines, plain, of one length, and each with a header value that
// holds it alone and cannot be appended to in place.
func TestNewRequestID(t *testing.T) {
	const workers, each = 4, 3 * idsPerBatch
	got := make([][]string, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			for range each {
				id, value := newRequestID()
				if len(value) != 1 || cap(value) != 1 || value[0] != id {
					t.Errorf("newRequestID() = %q, %q (cap %d), want the ID alone", id, value, cap(value))
				}
				got[i] = append(got[i], id)
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, ids := range got {
		for _, id := range ids {
			if seen[id] || !validID(id) || len(id) != idLen {
				t.Errorf("newRequestID() = %q: seen before %v, valid %v, length %d (want %d)", id, seen[id], validID(id), len(id), idLen)
			}
			seen[id] = true
		}
	}
}

// TestRequestIDFromProxy checks that a reverse proxy's plain ID runs
// through and any other is replaced.
func TestRequestIDFromProxy(t *testing.T) {
	for _, tc := range []struct {
		given string
		kept  bool
	}{
		{"abc-123_X.y", true},
		{"", false},
		{"has space", false},
		{string(make([]byte, 65)), false},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if tc.given != "" {
			r.Header.Set("X-Request-ID", tc.given)
		}
		id, value := requestID(r)
		if (id == tc.given) != tc.kept || len(value) != 1 || cap(value) != 1 || value[0] != id {
			t.Errorf("requestID(X-Request-ID %q) = %q, %q (cap %d); want the given one: %v", tc.given, id, value, cap(value), tc.kept)
		}
	}
}

package feed

import (
	"math/rand/v2"
	"testing"
)

// TestParsedSet: the workers' lists find every message, whatever order
// the messages were added and asked for in, and nothing else.
func TestParsedSet(t *testing.T) {
	for _, c := range []struct {
		name     string
		shuffled bool // added out of order
		askRand  bool // asked out of order
	}{{"ascending", false, false}, {"added out of order", true, false}, {"asked out of order", false, true}, {"both", true, true}} {
		t.Run(c.name, func(t *testing.T) {
			var uids []uint32
			for u := uint32(1); u <= 500; u++ {
				if u%7 != 0 { // some UIDs are not parsed
					uids = append(uids, u)
				}
			}
			added := append([]uint32(nil), uids...)
			if c.shuffled {
				rand.Shuffle(len(added), func(i, j int) { added[i], added[j] = added[j], added[i] })
			}
			p := make(parsedSet, 3)
			for i, u := range added {
				p[i/64%3].add(u, message{body: []byte{byte(u), byte(u >> 8)}})
			}
			ask := make([]uint32, 0, 500)
			for u := uint32(1); u <= 500; u++ {
				ask = append(ask, u)
			}
			if c.askRand {
				rand.Shuffle(len(ask), func(i, j int) { ask[i], ask[j] = ask[j], ask[i] })
			}
			for _, u := range ask {
				m, ok := p.get(u)
				if ok != (u%7 != 0) || ok && (m.body[0] != byte(u) || m.body[1] != byte(u>>8)) {
					t.Fatalf("get(%d) = %v, %v", u, m.body, ok)
				}
			}
		})
	}
}

package imapstore

import (
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/testbed"
)

// TestWatcherNotifyConns: with a NOTIFY set bounded to two folders and
// three connections, four folders take two connections and six three;
// each connection's folders are announced; a connection that dies takes
// its folders out of Watching until it has set them again, while the
// others keep announcing, and it asks for a resync when it is back.
func TestWatcherNotifyConns(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	type folder struct{ owner, name string }
	folders := []folder{{"alice", "Conns"}, {"bob", "Conns"}, {"carol", "Conns"}, {"dave", "Conns"},
		{testbed.Proxy, "Conns"}, {"alice", "Conns2"}}
	var names []string
	for _, f := range folders {
		srv.CreateFolder(t, f.owner, f.name)
		name := f.name
		if f.owner != testbed.Proxy {
			srv.SetACL(t, f.owner, f.name, testbed.Proxy, "lr")
			name = srv.SharedName(f.owner, f.name)
		}
		names = append(names, name)
	}
	sorted := func(l []string) []string { return slices.Sorted(slices.Values(l)) }

	var (
		mu      sync.Mutex
		dials   = map[int]int{}
		conns   = map[int]net.Conn{}
		hold    = make(chan struct{}) // holds slot 1's third connection
		holding = make(chan struct{})
	)
	ev := newEvents()
	w := NewWatcherWith(WatchOptions{Options: proxyOptions(srv), MaxNotify: 2, NotifyConns: 3,
		Changed: ev.changed, Resync: func() { ev.resync.Add(1) }})
	w.onDial = func(slot int, c net.Conn) {
		mu.Lock()
		dials[slot]++
		conns[slot] = c
		n := dials[slot]
		mu.Unlock()
		if slot == 1 && n == 2 {
			close(holding)
			<-hold
		}
	}
	defer w.Close()
	var once sync.Once
	release := func() { once.Do(func() { close(hold) }) }
	defer release() // before Close, should the test stop while it holds
	dialed := func() (total int) {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range dials {
			total += n
		}
		return total
	}
	announced := func(i int, what string) {
		t.Helper()
		n := ev.count(names[i])
		srv.Append(t, folders[i].owner, folders[i].name, emptyCalendar)
		waitChange(t, ev, names[i], n, what)
	}

	// Four folders: two connections.
	w.Watch(names[:4])
	waitFor(t, "two NOTIFY connections", func() bool { return ev.resync.Load() == 2 && len(w.Watching()) == 4 })
	if got, want := w.Watching(), sorted(names[:4]); !slices.Equal(got, want) {
		t.Errorf("Watching() = %q, want %q", got, want)
	}
	for i := range 4 {
		announced(i, "APPEND with four folders")
	}
	if n := dialed(); n != 2 {
		t.Errorf("%d NOTIFY connections for four folders, want 2", n)
	}

	// Six: a third connection, and the first two keep their sets.
	w.Watch(names)
	waitFor(t, "the third NOTIFY connection", func() bool { return ev.resync.Load() == 3 && len(w.Watching()) == 6 })
	if got, want := w.Watching(), sorted(names); !slices.Equal(got, want) {
		t.Errorf("Watching() = %q, want %q", got, want)
	}
	for i := range names {
		announced(i, "APPEND with six folders")
	}
	if n := dialed(); n != 3 {
		t.Errorf("%d NOTIFY connections for six folders, want 3", n)
	}
	if r := ev.resync.Load(); r != 3 {
		t.Errorf("%d resyncs, want 3: a set was replaced", r)
	}

	// The second connection dies: its folders are not watched until it
	// is back; the others keep announcing.
	mu.Lock()
	conns[1].Close()
	mu.Unlock()
	select {
	case <-holding:
	case <-time.After(20 * time.Second):
		t.Fatal("the second connection was not dialled again")
	}
	if got, want := w.Watching(), sorted(slices.Concat(names[:2], names[4:])); !slices.Equal(got, want) {
		t.Errorf("Watching() with the second connection down = %q, want %q", got, want)
	}
	if m := w.Mode(); m != WatchNotify {
		t.Errorf("Mode() with one connection of three down = %q, want notify", m)
	}
	for _, i := range []int{0, 1, 4, 5} {
		announced(i, "APPEND with the second connection down")
	}
	resyncs := ev.resync.Load()
	release()
	waitFor(t, "the second connection back", func() bool { return len(w.Watching()) == 6 && ev.resync.Load() > resyncs })
	for _, i := range []int{2, 3} {
		announced(i, "APPEND once the second connection is back")
	}

	// Back to four folders: the third connection closes.
	w.Watch(names[:4])
	waitFor(t, "four folders watched", func() bool { return len(w.Watching()) == 4 })
	for i := range 4 {
		announced(i, "APPEND back to four folders")
	}
	n := ev.count(names[4])
	srv.Append(t, folders[4].owner, folders[4].name, emptyCalendar)
	announced(0, "APPEND after one to a folder no longer watched")
	if got := ev.count(names[4]); got != n {
		t.Errorf("a folder no longer watched was reported %d times", got-n)
	}
}

// TestAssignNotify: folders stay on the connection that watches them,
// new ones go to the first with room, and no more connections are used
// than the folders need.
func TestAssignNotify(t *testing.T) {
	split := func(s string) []string { return strings.Fields(s) }
	shares := func(s string) [][]string {
		var out [][]string
		for _, p := range strings.Split(s, "|") {
			out = append(out, split(p))
		}
		return out
	}
	tests := []struct {
		prev, desired, want string
	}{
		{"||", "a b c", "a b|c|"},
		{"a b|c|", "c b a", "a b|c|"},                   // reordered: nothing moves
		{"a b|c|", "c a d e", "a d|c e|"},               // b dropped, room taken
		{"a b|c d|e f", "b d f", "b d|f|"},              // three half-empty: shared anew
		{"a b|c d|e", "c d e", "c d|e|"},                // the first would be empty
		{"a b|c d|e f", "a b c d e f g", "a b|c d|e f"}, // full
		{"||", "a a b", "a b||"},
	}
	for _, tt := range tests {
		got := assignNotify(shares(tt.prev), split(tt.desired), notifyBounds{names: 2, bytes: maxNotifyBytes, conns: 3})
		if want := shares(tt.want); !slices.EqualFunc(got, want, func(a, b []string) bool { return slices.Equal(a, b) }) {
			t.Errorf("assignNotify(%q, %q, 2, 3) = %q, want %q", tt.prev, tt.desired, got, want)
		}
	}
}

// TestNotifyFull: the sets are full when they leave folders out or hold
// connections × MaxNotify.
func TestNotifyFull(t *testing.T) {
	for _, tt := range []struct {
		desired []string
		want    bool
	}{
		{[]string{"a", "b", "c"}, false},
		{[]string{"a", "b", "c", "d"}, true},
		{[]string{"a", "b", "c", "d", "e"}, true},
		{[]string{"a", "a", "b"}, false},
	} {
		if got := notifyFull(tt.desired, notifyBounds{names: 2, bytes: maxNotifyBytes, conns: 2}); got != tt.want {
			t.Errorf("notifyFull(%q, 2, 2) = %v, want %v", tt.desired, got, tt.want)
		}
	}
}

// TestNotifyCost: what notifyCost counts for a name is what
// mailboxesFilter writes for it, so that a NOTIFY SET stays within
// maxNotifyBytes.
func TestNotifyCost(t *testing.T) {
	names := []string{"shared/u01234/Calendar", "INBOX", `shared/bob/Team "A" \ B`, "shared/alice/Réunions d'équipe", "日程"}
	empty := len(mailboxesFilter(nil, true))
	sum := 0
	for _, f := range names {
		got := len(mailboxesFilter([]string{f}, true)) - empty + 1 // the space before a name
		if c := notifyCost(f); c != got {
			t.Errorf("notifyCost(%q) = %d, mailboxesFilter writes %d", f, c, got)
		}
		sum += notifyCost(f)
	}
	if got := len(mailboxesFilter(names, true)) - empty + 1; got != sum {
		t.Errorf("mailboxesFilter of %d names writes %d bytes, notifyCost sums to %d", len(names), got, sum)
	}
}

// TestNotifyCapacity: how many of the folders given to Watch NOTIFY's
// connections carry, and how many NOTIFY could watch at all (distinct,
// and not a name like R&D it cannot carry), with no server involved.
func TestNotifyCapacity(t *testing.T) {
	w := NewWatcherWith(WatchOptions{MaxNotify: 2, NotifyConns: 2})
	for _, c := range []struct {
		desired         []string
		carried, wanted int
	}{
		{nil, 0, 0},
		{[]string{"a", "b", "a"}, 2, 2},
		{[]string{"a", "b", "c", "d"}, 4, 4},
		{[]string{"a", "b", "c", "d", "e", "R&D", "f"}, 4, 6},
	} {
		w.mu.Lock()
		w.desired = c.desired
		w.mu.Unlock()
		if carried, wanted := w.NotifyCapacity(); carried != c.carried || wanted != c.wanted {
			t.Errorf("NotifyCapacity() of %q = %d, %d; want %d, %d", c.desired, carried, wanted, c.carried, c.wanted)
		}
	}
}

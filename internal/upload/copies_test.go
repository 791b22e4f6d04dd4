package upload

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-ical"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/imapstore"
	"github.com/fbpub/fbpub/internal/testbed"
)

// copiesIn reads a folder as the owner: for each UID, the summaries of
// all the messages that hold it, sorted; an override is summarised as
// its SUMMARY with its RECURRENCE-ID.
func copiesIn(t *testing.T, srv *testbed.Server, owner, folder string) map[string][]string {
	t.Helper()
	s, err := dialer(srv.Addr)(t.Context(), owner, testbed.Password(owner))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := s.Fetch(t.Context(), folder, imapstore.Query{Want: calendar.IsCalendarType, WholeBelow: 1 << 20})
	if errors.Is(err, imapstore.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, m := range l.Messages {
		if l.Deleted[m.UID] {
			continue
		}
		objs, _ := messageObjects(m)
		for _, o := range objs {
			var parts []string
			for _, e := range o.Events() {
				sum, _ := e.Props.Text(ical.PropSummary)
				if p := e.Props.Get(ical.PropRecurrenceID); p != nil {
					sum += "@" + p.Value
				}
				parts = append(parts, sum)
			}
			out[o.UID] = append(out[o.UID], strings.Join(parts, "+"))
		}
	}
	for _, v := range out {
		slices.Sort(v)
	}
	return out
}

// override is an occurrence of the weekly series ev("s", …) moved by an
// hour, in a VEVENT of its own.
func override(summary, seq string) string {
	return "BEGIN:VEVENT\r\nUID:s\r\nDTSTAMP:20250101T000000Z\r\nRECURRENCE-ID:20250317T090000Z\r\nDTSTART:20250317T100000Z\r\nDTEND:20250317T110000Z\r\nSUMMARY:" + summary + "\r\nSEQUENCE:" + seq + "\r\nEND:VEVENT\r\n"
}

func series(summary, seq string) string {
	return strings.Replace(ev("s", summary, seq), "END:VEVENT", "RRULE:FREQ=WEEKLY;COUNT=4\r\nEND:VEVENT", 1)
}

// TestDuplicateCopies: a folder holding a UID in several messages (a
// replace by append-then-delete that was interrupted, or raced; an
// override in a message of its own). An upload removes a copy only when
// it is at least as new, refuses itself when any copy is newer, and every
// copy that leaves the folder with content the folder no longer holds is
// in the log.
func TestDuplicateCopies(t *testing.T) { onBothServers(t, testDuplicateCopies) }

func testDuplicateCopies(t *testing.T, srv *testbed.Server) {
	type want struct {
		res    Result
		folder map[string][]string
		log    map[string][]string
		// untouched: the folder must not be written at all.
		untouched bool
	}
	for _, tc := range []struct {
		name   string
		copies []string // each its own message in the folder
		logged []string // each its own message in the log
		upload []string
		want   want
	}{{
		name:   "equal to the older of two",
		copies: []string{ev("a", "Alpha 1", "1"), ev("a", "Alpha 2", "2")},
		upload: []string{ev("a", "Alpha 1", "1")},
		want:   want{Result{Refused: 1}, map[string][]string{"a": {"Alpha 1", "Alpha 2"}}, nil, true},
	}, {
		name:   "equal to the newer of two",
		copies: []string{ev("a", "Alpha 1", "1"), ev("a", "Alpha 2", "2")},
		upload: []string{ev("a", "Alpha 2", "2")},
		want:   want{Result{Replaced: 1}, map[string][]string{"a": {"Alpha 2"}}, map[string][]string{"a": {"Alpha 1"}}, false},
	}, {
		name:   "older than one of three, equal to another",
		copies: []string{ev("a", "Alpha 0", "0"), ev("a", "Alpha 2", "2"), ev("a", "Alpha 1", "1")},
		upload: []string{ev("a", "Alpha 1", "1")},
		want:   want{Result{Refused: 1}, map[string][]string{"a": {"Alpha 0", "Alpha 1", "Alpha 2"}}, nil, true},
	}, {
		name:   "newer than all three",
		copies: []string{ev("a", "Alpha 0", "0"), ev("a", "Alpha 2", "2"), ev("a", "Alpha 1", "1")},
		upload: []string{ev("a", "Alpha 3", "3")},
		want: want{Result{Replaced: 1}, map[string][]string{"a": {"Alpha 3"}},
			map[string][]string{"a": {"Alpha 0", "Alpha 1", "Alpha 2"}}, false},
	}, {
		name:   "as new as a conflicting copy",
		copies: []string{ev("a", "Alpha by one", "1"), ev("a", "Alpha by two", "1")},
		upload: []string{ev("a", "Alpha by one", "1")},
		want:   want{Result{Replaced: 1}, map[string][]string{"a": {"Alpha by one"}}, map[string][]string{"a": {"Alpha by two"}}, false},
	}, {
		name:   "identical duplicates",
		copies: []string{ev("a", "Alpha", "1"), ev("a", "Alpha", "1")},
		upload: []string{ev("a", "Alpha", "1")},
		want:   want{Result{Unchanged: 1}, map[string][]string{"a": {"Alpha"}}, nil, false},
	}, {
		name:   "all copies deleted",
		copies: []string{ev("a", "Alpha 1", "1"), ev("a", "Alpha 2", "2"), ev("b", "Bravo", "")},
		upload: []string{ev("b", "Bravo", "")},
		want: want{Result{Deleted: 1, Unchanged: 1}, map[string][]string{"b": {"Bravo"}},
			map[string][]string{"a": {"Alpha 1", "Alpha 2"}}, false},
	}, {
		name:   "a copy in the log already is not logged twice",
		copies: []string{ev("a", "Alpha 1", "1"), ev("a", "Alpha 2", "2")},
		logged: []string{ev("a", "Alpha 1", "1")},
		upload: []string{ev("a", "Alpha 2", "2")},
		want:   want{Result{Replaced: 1}, map[string][]string{"a": {"Alpha 2"}}, map[string][]string{"a": {"Alpha 1"}}, false},
	}, {
		name:   "deleted before, in the log, newer than the upload",
		logged: []string{ev("a", "Alpha 2", "2"), ev("a", "Alpha 1", "1")},
		upload: []string{ev("a", "Alpha 1", "1")},
		want:   want{Result{Refused: 1}, nil, map[string][]string{"a": {"Alpha 1", "Alpha 2"}}, true},
	}, {
		name:   "an override in its own message, uploaded as one",
		copies: []string{series("Series", "0"), override("Moved", "0")},
		upload: []string{series("Series", "0"), override("Moved", "0")},
		want:   want{Result{Unchanged: 1}, map[string][]string{"s": {"Moved@20250317T090000Z", "Series"}}, nil, true},
	}, {
		name:   "an override in its own message, newer than an upload without it",
		copies: []string{series("Series", "0"), override("Moved", "1")},
		upload: []string{series("Series", "0")},
		want:   want{Result{Refused: 1}, map[string][]string{"s": {"Moved@20250317T090000Z", "Series"}}, nil, true},
	}, {
		name:   "an override in its own message, changed",
		copies: []string{series("Series", "0"), override("Moved", "1")},
		upload: []string{series("Series", "0"), override("Moved again", "2")},
		want: want{Result{Replaced: 1}, map[string][]string{"s": {"Series+Moved again@20250317T090000Z"}},
			map[string][]string{"s": {"Moved@20250317T090000Z", "Series"}}, false},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			srv.Reset(t)
			srv.CreateFolder(t, "alice", "Calendar")
			for _, e := range tc.copies {
				srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("event", string(cal(e))))
			}
			if tc.logged != nil {
				srv.CreateFolder(t, "alice", DefaultLogFolder)
				for _, e := range tc.logged {
					srv.Append(t, "alice", DefaultLogFolder, testbed.CalendarMessage("event", string(cal(e))))
				}
			}
			before := state(t, srv, "alice", "Calendar")
			res, err := newService(srv.Addr).Put(t.Context(), Request{User: "alice", Password: testbed.Password("alice"), Owner: "alice",
				Folder: []string{"Calendar"}, Body: cal(tc.upload...)})
			if err != nil {
				t.Fatal(err)
			}
			if res != tc.want.res {
				t.Errorf("result %+v, want %+v", res, tc.want.res)
			}
			if got := copiesIn(t, srv, "alice", "Calendar"); fmt.Sprint(got) != fmt.Sprint(tc.want.folder) {
				t.Errorf("folder holds %v, want %v", got, tc.want.folder)
			}
			if got := copiesIn(t, srv, "alice", DefaultLogFolder); fmt.Sprint(got) != fmt.Sprint(tc.want.log) {
				t.Errorf("log holds %v, want %v", got, tc.want.log)
			}
			if after := state(t, srv, "alice", "Calendar"); tc.want.untouched && after != before {
				t.Errorf("the upload wrote to the folder: %+v → %+v", before, after)
			}
			if tc.want.log == nil {
				return
			}
			for _, m := range storedMessages(t, srv, "alice", DefaultLogFolder)[len(tc.logged):] {
				if !strings.Contains(string(m), "; reason=replaced") && !strings.Contains(string(m), "; reason=deleted") {
					t.Errorf("a log copy does not say why it was removed:\n%s", m)
				}
			}
		})
	}
}

// TestRacingReplicas: two uploaders that share no lock (two fbpub
// replicas) upload conflicting versions of one event at once, round
// after round. Whatever the interleaving, no version that reached the
// folder is lost (it is in the folder or in the log), the newest stays
// in the folder, and an event both leave alone keeps its one copy.
func TestRacingReplicas(t *testing.T) {
	srv := testbed.Get(t)
	seed(t, srv, ev("x", "start", "0"), ev("k", "Kept", ""))
	replicas := []*Service{newService(srv.Addr), newService(srv.Addr)}
	stored := []string{"start"} // every version that reached the folder
	newest := 0
	duplicates, refusals := 0, 0 // rounds that left two copies; uploads refused
	const rounds = 30
	for round := 1; round <= rounds; round++ {
		// Replica 0 writes SEQUENCE round; replica 1 one less, as much
		// or one more, in turn.
		seqs := []int{round, round + round%3 - 1}
		summaries := make([]string, 2)
		results := make([]Result, 2)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, svc := range replicas {
			summaries[i] = fmt.Sprintf("replica %d round %d seq %d", i, round, seqs[i])
			body := cal(ev("k", "Kept", ""), ev("x", summaries[i], strconv.Itoa(seqs[i])))
			wg.Go(func() {
				<-start
				results[i], errs[i] = svc.Put(context.Background(), Request{User: "alice", Password: testbed.Password("alice"),
					Owner: "alice", Folder: []string{"Calendar"}, Body: body})
			})
		}
		close(start)
		wg.Wait()
		for i := range replicas {
			if errs[i] != nil {
				t.Fatalf("round %d, replica %d: %v", round, i, errs[i])
			}
			if results[i].Refused == 0 {
				stored = append(stored, summaries[i])
				newest = max(newest, seqs[i])
			} else {
				refusals++
			}
		}
		folder := copiesIn(t, srv, "alice", "Calendar")
		logged := copiesIn(t, srv, "alice", DefaultLogFolder)
		if len(folder["x"]) > 1 {
			duplicates++
		}
		for _, s := range stored {
			if !slices.Contains(folder["x"], s) && !slices.Contains(logged["x"], s) {
				t.Errorf("round %d: %q is lost: in neither the folder %v nor the log %v", round, s, folder["x"], logged["x"])
			}
		}
		if !slices.ContainsFunc(folder["x"], func(s string) bool { return strings.HasSuffix(s, fmt.Sprintf(" seq %d", newest)) }) {
			t.Errorf("round %d: the folder %v lacks the newest version (SEQUENCE %d)", round, folder["x"], newest)
		}
		if fmt.Sprint(folder["k"]) != "[Kept]" || len(logged["k"]) != 0 {
			t.Errorf("round %d: the event both left alone: folder %v, log %v", round, folder["k"], logged["k"])
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	// One more upload of the newest version leaves it alone, once.
	last := slices.IndexFunc(stored, func(s string) bool { return strings.HasSuffix(s, fmt.Sprintf(" seq %d", newest)) })
	if _, err := replicas[0].Put(t.Context(), Request{User: "alice", Password: testbed.Password("alice"), Owner: "alice",
		Folder: []string{"Calendar"}, Body: cal(ev("k", "Kept", ""), ev("x", stored[last], strconv.Itoa(newest)))}); err != nil {
		t.Fatal(err)
	}
	if got := copiesIn(t, srv, "alice", "Calendar"); fmt.Sprint(got["x"]) != fmt.Sprint([]string{stored[last]}) {
		t.Errorf("after the race, the newest upload again: folder holds %v, want %q once", got["x"], stored[last])
	}
	t.Logf("%d versions reached the folder in %d rounds, %d uploads were refused as older, %d rounds left two copies; none lost",
		len(stored), rounds, refusals, duplicates)
}

// TestTwoEventsOneUID: an upload that holds one event twice (two masters
// with one UID, two overrides with one RECURRENCE-ID) could store only
// one of them: it is refused, naming the UID, and nothing is written.
func TestTwoEventsOneUID(t *testing.T) { onBothServers(t, testTwoEventsOneUID) }

func testTwoEventsOneUID(t *testing.T, srv *testbed.Server) {
	seed(t, srv, ev("a", "Alpha", ""))
	noUID := "BEGIN:VEVENT\r\nDTSTAMP:20250101T000000Z\r\nDTSTART:20250310T090000Z\r\nSUMMARY:Anonymous\r\nEND:VEVENT\r\n"
	for _, tc := range []struct {
		name string
		body []byte
		want DuplicateError
	}{
		{"two masters", cal(ev("a", "Alpha", ""), ev("b", "Bravo", ""), ev("b", "Bravo too", "")), DuplicateError{UID: "b"}},
		{"two masters in two calendars", append(cal(ev("b", "Bravo", "")), cal(ev("b", "Bravo too", ""))...), DuplicateError{UID: "b"}},
		{"two overrides", cal(series("Series", "0"), override("Moved", "0"), override("Moved too", "0")), DuplicateError{UID: "s", RecurrenceID: "20250317T090000Z"}},
		{"two identical events without UID", cal(noUID, noUID), DuplicateError{NoUID: true}},
	} {
		before := state(t, srv, "alice", "Calendar")
		res, err := newService(srv.Addr).Put(t.Context(), Request{User: "alice", Password: testbed.Password("alice"), Owner: "alice",
			Folder: []string{"Calendar"}, Body: tc.body})
		var de *DuplicateError
		if !errors.As(err, &de) || !errors.Is(err, ErrBadInput) {
			t.Errorf("%s: %+v, %v; want a DuplicateError", tc.name, res, err)
			continue
		}
		if de.RecurrenceID != tc.want.RecurrenceID || de.NoUID != tc.want.NoUID || !tc.want.NoUID && de.UID != tc.want.UID {
			t.Errorf("%s: %+v, want %+v", tc.name, *de, tc.want)
		}
		if !tc.want.NoUID && !strings.Contains(err.Error(), strconv.Quote(tc.want.UID)) {
			t.Errorf("%s: %q does not name the UID", tc.name, err)
		}
		if after := state(t, srv, "alice", "Calendar"); after != before {
			t.Errorf("%s: a refused upload changed the folder", tc.name)
		}
	}
	// Distinct overrides of one series, and distinct events without UID,
	// are all stored.
	res, err := newService(srv.Addr).Put(t.Context(), Request{User: "alice", Password: testbed.Password("alice"), Owner: "alice",
		Folder: []string{"Calendar"}, Body: cal(ev("a", "Alpha", ""), series("Series", "0"), override("Moved", "0"),
			strings.Replace(override("Moved too", "0"), "20250317T09", "20250324T09", 1), noUID, strings.Replace(noUID, "Anonymous", "Other", 1))})
	if err != nil || res != (Result{Added: 3, Unchanged: 1}) {
		t.Fatalf("distinct events: %+v, %v", res, err)
	}
	if got := copiesIn(t, srv, "alice", "Calendar"); fmt.Sprint(got["s"]) != "[Series+Moved@20250317T090000Z+Moved too@20250324T090000Z]" {
		t.Errorf("the series is stored as %v", got["s"])
	}
}

// TestTooManyEvents: an upload over upload.max_events, whether a little
// (counted after the parse) or far (100,000 events, more than fbpub
// parses in one calendar), is ErrTooMany (413), found without parsing
// the bulk of it; nothing is written.
func TestTooManyEvents(t *testing.T) {
	srv := testbed.Get(t)
	seed(t, srv, ev("a", "Alpha", ""))
	before := state(t, srv, "alice", "Calendar")
	var huge strings.Builder
	for i := range 100000 {
		huge.WriteString(ev("e"+strconv.Itoa(i), "x", ""))
	}
	hugeBody := cal(huge.String())
	// A BEGIN line folded in two is counted only by the parse.
	folded := cal(ev("a", "Alpha", ""), strings.Replace(ev("b", "Bravo", ""), "BEGIN:VEVENT", "BEGIN:VEV\r\n ENT", 1), ev("c", "Charlie", ""))
	for _, tc := range []struct {
		name string
		max  int
		body []byte
	}{{"100,000 events", 0, hugeBody}, {"one too many, one BEGIN folded", 2, folded}} {
		svc := New(Options{Dial: dialer(srv.Addr), MaxEvents: tc.max})
		_, err := svc.Put(t.Context(), Request{User: "alice", Password: testbed.Password("alice"), Owner: "alice", Folder: []string{"Calendar"}, Body: tc.body})
		if !errors.Is(err, ErrTooMany) || !strings.Contains(err.Error(), "upload.max_events") {
			t.Errorf("%s: %v; want ErrTooMany naming upload.max_events", tc.name, err)
		}
	}
	svc := New(Options{Dial: dialer(srv.Addr)})
	allocs := testing.AllocsPerRun(1, func() {
		if _, err := svc.split(hugeBody); !errors.Is(err, ErrTooMany) {
			t.Fatal(err)
		}
	})
	if allocs > 20 {
		t.Errorf("refusing 100,000 events took %.0f allocations: the calendar was parsed", allocs)
	}
	if after := state(t, srv, "alice", "Calendar"); after != before {
		t.Errorf("refused uploads changed the folder")
	}
}

// TestPutWithoutInsert: a PUT is a write even when the folder holds the
// upload already: without the i right it is refused.
func TestPutWithoutInsert(t *testing.T) { onBothServers(t, testPutWithoutInsert) }

func testPutWithoutInsert(t *testing.T, srv *testbed.Server) {
	seed(t, srv, ev("a", "Alpha", ""))
	srv.SetACL(t, "alice", "Calendar", "bob", "lrswte") // all but i
	before := state(t, srv, "alice", "Calendar")
	for name, body := range map[string][]byte{
		"unchanged": cal(ev("a", "Alpha", "")),
		"older":     cal(strings.Replace(ev("a", "Alpha before", ""), "DTSTAMP:2025", "DTSTAMP:2024", 1)),
		"deleting":  cal(),
	} {
		res, err := newService(srv.Addr).Put(t.Context(), Request{User: "bob", Password: testbed.Password("bob"), Owner: "alice",
			Folder: []string{"Calendar"}, Body: body})
		var de *DeniedError
		if !errors.As(err, &de) || de.Right != acl.Insert {
			t.Errorf("%s, without i: %+v, %v; want a DeniedError for i", name, res, err)
		}
	}
	if after := state(t, srv, "alice", "Calendar"); after != before {
		t.Errorf("a refused upload changed the folder")
	}
}

// TestLogWithoutRead: a delegate who may add to the owner's log but not
// read it (li) can still replace events: the replaced copy is logged
// without fbpub looking for an earlier copy of it there.
func TestLogWithoutRead(t *testing.T) { onBothServers(t, testLogWithoutRead) }

func testLogWithoutRead(t *testing.T, srv *testbed.Server) {
	seed(t, srv, ev("a", "Alpha", ""))
	srv.SetACL(t, "alice", "Calendar", "bob", "lrswite")
	srv.CreateFolder(t, "alice", DefaultLogFolder)
	srv.SetACL(t, "alice", DefaultLogFolder, "bob", "li")
	res, err := newService(srv.Addr).Put(t.Context(), Request{User: "bob", Password: testbed.Password("bob"), Owner: "alice",
		Folder: []string{"Calendar"}, Body: cal(ev("a", "Alpha by bob", "1"))})
	if err != nil || res != (Result{Replaced: 1}) {
		t.Fatalf("bob replacing with li on the log: %+v, %v", res, err)
	}
	if got := copiesIn(t, srv, "alice", DefaultLogFolder); fmt.Sprint(got) != "map[a:[Alpha]]" {
		t.Errorf("log holds %v, want the replaced Alpha", got)
	}
}

// TestStaleDelegateCannotResurrect: an event the owner deleted is not
// brought back by a delegate's stale upload, whatever the delegate's
// rights on the log. One who may read the log has the stale copy refused;
// one who may not (i alone, or no right at all) cannot tell a deleted
// copy from a new event, so an upload that would add an event is refused
// whole, with nothing written. Changing and deleting the events the
// folder holds needs no look at the log and still works.
func TestStaleDelegateCannotResurrect(t *testing.T) {
	onBothServers(t, testStaleDelegateCannotResurrect)
}

func testStaleDelegateCannotResurrect(t *testing.T, srv *testbed.Server) {
	for _, logRights := range []string{"lri", "li", "i", ""} {
		t.Run("log "+logRights, func(t *testing.T) {
			seed(t, srv, ev("a1", "One", ""), ev("a4", "Four", ""))
			srv.SetACL(t, "alice", "Calendar", "bob", "lrswite")
			svc := newService(srv.Addr)
			alice := Request{User: "alice", Password: testbed.Password("alice"), Owner: "alice", Folder: []string{"Calendar"}}
			alice.Body = cal(ev("a1", "One", ""))
			if res, err := svc.Put(t.Context(), alice); err != nil || res != (Result{Deleted: 1, Unchanged: 1}) {
				t.Fatalf("alice deleting a4: %+v, %v", res, err)
			}
			if logRights != "" {
				srv.SetACL(t, "alice", DefaultLogFolder, "bob", logRights)
			}
			before, logBefore := state(t, srv, "alice", "Calendar"), state(t, srv, "alice", DefaultLogFolder)

			bob := Request{User: "bob", Password: testbed.Password("bob"), Owner: "alice", Folder: []string{"Calendar"}}
			bob.Body = cal(ev("a1", "One", ""), ev("a4", "Four", "")) // stale: a4 as it was
			res, err := svc.Put(t.Context(), bob)
			var de *DeniedError
			switch {
			case strings.Contains(logRights, "r"):
				if err != nil || res != (Result{Unchanged: 1, Refused: 1}) {
					t.Errorf("stale upload by bob with %q on the log: %+v, %v; want a4 refused", logRights, res, err)
				}
			case !errors.As(err, &de) || de.Right != acl.Read || de.Folder != DefaultLogFolder:
				t.Errorf("stale upload by bob with %q on the log: %+v, %v; want a DeniedError for r on the log", logRights, res, err)
			}
			if got := copiesIn(t, srv, "alice", "Calendar"); fmt.Sprint(got) != "map[a1:[One]]" {
				t.Errorf("bob's stale upload brought a4 back: the folder holds %v", got)
			}
			if after := state(t, srv, "alice", "Calendar"); after != before {
				t.Errorf("a refused upload changed the folder")
			}
			if after := state(t, srv, "alice", DefaultLogFolder); after != logBefore {
				t.Errorf("a refused upload changed the log")
			}

			// Changing an event the folder holds needs no look at the log.
			if !strings.Contains(logRights, "i") {
				return // nor can bob log the replaced copy
			}
			bob.Body = cal(ev("a1", "One by bob", "1"))
			if res, err := svc.Put(t.Context(), bob); err != nil || res != (Result{Replaced: 1}) {
				t.Errorf("bob changing a1 with %q on the log: %+v, %v", logRights, res, err)
			}
		})
	}
}

// TestHiddenLogRightNamed: a delegate who cannot see the owner's log,
// which exists, is told the right they lack on it (i), not that they may
// not create it.
func TestHiddenLogRightNamed(t *testing.T) { onBothServers(t, testHiddenLogRightNamed) }

func testHiddenLogRightNamed(t *testing.T, srv *testbed.Server) {
	seed(t, srv, ev("a1", "One", ""))
	srv.CreateFolder(t, "alice", DefaultLogFolder)
	srv.SetACL(t, "alice", "Calendar", "bob", "lrswite")
	before, logBefore := state(t, srv, "alice", "Calendar"), state(t, srv, "alice", DefaultLogFolder)
	res, err := newService(srv.Addr).Put(t.Context(), Request{User: "bob", Password: testbed.Password("bob"), Owner: "alice",
		Folder: []string{"Calendar"}, Body: cal()})
	var de *DeniedError
	if !errors.As(err, &de) || de.Right != acl.Insert || de.Folder != DefaultLogFolder || strings.Contains(err.Error(), "to create") {
		t.Errorf("bob deleting, without rights on the log: %+v, %v; want a DeniedError for i on the log", res, err)
	}
	if state(t, srv, "alice", "Calendar") != before || state(t, srv, "alice", DefaultLogFolder) != logBefore {
		t.Errorf("a refused upload changed the folder or the log")
	}
}

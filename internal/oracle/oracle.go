// Package oracle runs the reference implementations fbpub's tests compare
// against: tools/oracle/busy.mjs around ical.js (Thunderbird's engine) for
// free/busy, and the parsers calendar clients use (ical.js, Python's
// icalendar) for feeds. It is for tests only.
package oracle

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// root finds the module root (the directory holding go.mod).
func root(t testing.TB) string {
	t.Helper()
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("oracle: no go.mod above the working directory")
		}
		dir = parent
	}
}

// unavailable fails the test under CI=true and skips it elsewhere.
func unavailable(t testing.TB, what string) {
	t.Helper()
	msg := "oracle: " + what + " not installed; run ./testbed/install"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Busy is the ical.js free/busy oracle, one Node process answering JSON
// requests line by line. It is safe for concurrent use.
type Busy struct {
	mu  sync.Mutex
	in  *json.Encoder
	out *bufio.Scanner
}

// Request is one free/busy question; see tools/oracle/README.md.
type Request struct {
	ICS   string `json:"ics"`
	Start string `json:"start"`
	End   string `json:"end"`
	TZ    string `json:"tz"`
	Owner string `json:"owner,omitempty"`
	// Mode "rfc" corrects the ical.js errors the oracle knows of.
	Mode         string `json:"mode,omitempty"`
	MaxInstances int    `json:"max_instances,omitempty"`
}

// Answer is the oracle's answer.
type Answer struct {
	Periods []struct {
		Start, End, Type string
	} `json:"periods"`
	Deviations []struct {
		Kind string `json:"kind"`
	} `json:"deviations"`
	Truncated bool   `json:"truncated"`
	Error     string `json:"error"`
}

// Lines renders the periods as "TYPE START END" lines, as fbpub's tests
// print theirs.
func (a Answer) Lines() []string {
	var out []string
	for _, p := range a.Periods {
		out = append(out, fmt.Sprintf("%s %s %s", p.Type, p.Start, p.End))
	}
	return out
}

// StartBusy starts the free/busy oracle for the test.
func StartBusy(t testing.TB) *Busy {
	t.Helper()
	dir := filepath.Join(root(t), "tools", "oracle")
	if _, err := exec.LookPath("node"); err != nil {
		unavailable(t, "node")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ical.js")); err != nil {
		unavailable(t, "ical.js (tools/oracle/node_modules)")
	}
	cmd := exec.Command("node", filepath.Join(dir, "busy.mjs"))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	return &Busy{in: json.NewEncoder(stdin), out: sc}
}

// Ask sends one request and returns the answer.
func (b *Busy) Ask(t testing.TB, req Request) Answer {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.in.Encode(req); err != nil {
		t.Fatal(err)
	}
	if !b.out.Scan() {
		t.Fatalf("oracle died: %v", b.out.Err())
	}
	var a Answer
	if err := json.Unmarshal(b.out.Bytes(), &a); err != nil {
		t.Fatalf("oracle answer: %v", err)
	}
	return a
}

// ParseICalJS parses an iCalendar text with ical.js, as Thunderbird does
// when it reads a subscribed calendar, and returns the number of VEVENTs.
func ParseICalJS(t testing.TB, text string) (int, error) {
	t.Helper()
	dir := filepath.Join(root(t), "tools", "oracle")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ical.js")); err != nil {
		unavailable(t, "ical.js (tools/oracle/node_modules)")
	}
	script := `import ICAL from 'ical.js';
let s = ''; process.stdin.setEncoding('utf8');
for await (const c of process.stdin) s += c;
const comp = new ICAL.Component(ICAL.parse(s));
for (const e of comp.getAllSubcomponents('vevent')) { new ICAL.Event(e).startDate; }
console.log(comp.getAllSubcomponents('vevent').length);`
	cmd := exec.Command("node", "--input-type=module", "-e", script)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("ical.js: %v: %s", err, out)
	}
	var n int
	_, err = fmt.Sscan(string(out), &n)
	return n, err
}

// ParsePython parses an iCalendar text with Python's icalendar library
// (Debian's python3-icalendar) and returns the number of VEVENTs.
func ParsePython(t testing.TB, text string) (int, error) {
	t.Helper()
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import icalendar").Run(); err != nil {
		unavailable(t, "python3-icalendar")
	}
	cmd := exec.Command(py, "-c", `import sys, icalendar
cal = icalendar.Calendar.from_ical(sys.stdin.buffer.read())
evs = cal.walk('VEVENT')
for e in evs:
    e.decoded('DTSTART'); e.get('SUMMARY')
print(len(evs))`)
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("python icalendar: %v: %s", err, out)
	}
	var n int
	_, err = fmt.Sscan(string(out), &n)
	return n, err
}

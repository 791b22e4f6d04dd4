package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of /proc/<pid>/stat's CPU times (USER_HZ, 100 on
// Linux everywhere).
const clockTick = 100

type stat struct {
	comm                         string // the command's name: imap, auth, dict…
	ppid                         int
	utime, stime, cutime, cstime int64 // clock ticks
}

func readStat(pid int) (stat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, false
	}
	// The command name is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return stat{}, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is the state (field 3); utime is field 14, so f[11].
	if len(f) < 15 {
		return stat{}, false
	}
	n := func(k int) int64 { v, _ := strconv.ParseInt(f[k], 10, 64); return v }
	comm := ""
	if j := strings.IndexByte(s, '('); j >= 0 && j < i {
		comm = s[j+1 : i]
	}
	return stat{comm: comm, ppid: int(n(1)), utime: n(11), stime: n(12), cutime: n(13), cstime: n(14)}, true
}

// cpuTime is the CPU time (user + system) that pid has used.
func cpuTime(pid int) time.Duration {
	st, _ := readStat(pid)
	return ticks(st.utime + st.stime)
}

// treeCPU is the CPU time used by pid and all its descendants, those that
// have exited and been waited for included (they are in their parent's
// cutime and cstime): for Dovecot, whose imap processes come and go.
func treeCPU(root int) time.Duration {
	t, _ := treeCPUBy(root)
	return t
}

// treeCPUBy is treeCPU, and the same time by command name (the processes
// that exited are under "exited", with their parents' cutime and
// cstime).
func treeCPUBy(root int) (time.Duration, map[string]time.Duration) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, nil
	}
	all := map[int]stat{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok {
			all[pid] = st
		}
	}
	in := map[int]bool{root: true}
	for changed := true; changed; {
		changed = false
		for pid, st := range all {
			if !in[pid] && in[st.ppid] {
				in[pid] = true
				changed = true
			}
		}
	}
	var t int64
	by := map[string]time.Duration{}
	for pid := range in {
		st := all[pid]
		t += st.utime + st.stime + st.cutime + st.cstime
		by[st.comm] += ticks(st.utime + st.stime)
		by["exited"] += ticks(st.cutime + st.cstime)
	}
	return ticks(t), by
}

func ticks(n int64) time.Duration { return time.Duration(n) * time.Second / clockTick }

// rss is VmRSS of pid in bytes.
func rss(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// clientConns counts the established TCP connections to port on this
// machine (clients of the server listening there), from /proc/net/tcp and
// tcp6.
func clientConns(port int) int {
	want := fmt.Sprintf(":%04X", port)
	n := 0
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			// sl local_address rem_address st …; st 01 is ESTABLISHED.
			if len(fs) > 3 && fs[3] == "01" && strings.HasSuffix(fs[2], want) {
				n++
			}
		}
	}
	return n
}

package upload

import (
	"maps"
	"slices"
	"strings"

	"github.com/emersion/go-ical"
	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/calendar"
)

// plan is what an upload will do.
type plan struct {
	appends []object  // to the folder
	remove  []uint32  // from the folder, after the log copies and appends
	toLog   []removal // copied to the log first
	result  Result
}

// removal is a copy the upload removes whose content does not stay in
// the folder.
type removal struct {
	*held
	uid string
	why string // "deleted" (the upload lacks its UID) or "replaced"
}

// plan reconciles the upload with the folder (see the package comment).
// It removes a copy only when the upload lacks its UID or holds a version
// at least as new, and logs every removed copy whose content does not
// stay.
func (s *Service) plan(incoming []object, current, logged map[string]*stored) plan {
	var p plan
	uids := slices.Sorted(maps.Keys(current))
	dropped := p.reconcile(incoming, current, logged, uids)
	p.removeMessages(dropped)
	stays := p.keep(current, dropped, uids)
	p.logDropped(current, dropped, stays, uids)
	return p
}

// reconcile decides for each UID, the upload's and the folder's (uids,
// sorted), what is appended and which copies go, and why: "replaced" or
// "deleted". It counts the result.
func (p *plan) reconcile(incoming []object, current, logged map[string]*stored, uids []string) (dropped map[*held]string) {
	dropped = map[*held]string{}
	uploaded := map[string]bool{}
	for _, in := range incoming {
		uploaded[in.uid] = true
		cur := current[in.uid]
		switch {
		case cur == nil:
			if d := logged[in.uid]; d != nil && in.version.compare(d.newest()) <= 0 {
				p.result.Refused++ // deleted before, and not changed since
				continue
			}
			p.appends = append(p.appends, in)
			p.result.Added++
		case cur.wholeHash() == in.hash:
			p.result.Unchanged++ // what the folder holds, copy or parts
		case in.version.compare(cur.newest()) < 0:
			p.result.Refused++ // some copy is newer, whatever the others
		default:
			// No copy is newer than the upload: all go, but one that
			// already holds the upload's content, which stays.
			i := slices.IndexFunc(cur.copies, func(c *held) bool { return c.hash == in.hash })
			changed := false
			for j, c := range cur.copies {
				if j != i {
					dropped[c] = "replaced"
					changed = changed || c.hash != in.hash
				}
			}
			switch {
			case i >= 0 && !changed:
				p.result.Unchanged++ // duplicates of it go
				continue
			case i >= 0:
				p.result.Replaced++ // by the copy that holds it already
				continue
			}
			keepAlarms(in.obj, cur)
			p.appends = append(p.appends, in)
			p.result.Replaced++
		}
	}
	for _, uid := range uids {
		if !uploaded[uid] {
			for _, c := range current[uid].copies {
				dropped[c] = "deleted"
			}
			p.result.Deleted++
		}
	}
	return dropped
}

// removeMessages lists the messages of the dropped copies, sorted: a
// message holding several objects is removed once.
func (p *plan) removeMessages(dropped map[*held]string) {
	for c := range dropped {
		p.remove = append(p.remove, c.msg)
	}
	slices.Sort(p.remove)
	p.remove = slices.Compact(p.remove)
}

// keep returns what the folder holds of each UID after the upload (the
// content hashes of the copies that stay, and of what is appended), and
// appends on its own a copy that stays but shares a message with one
// that goes (a whole calendar stored as one message).
func (p *plan) keep(current map[string]*stored, dropped map[*held]string, uids []string) (stays map[string][]string) {
	stays = map[string][]string{}
	for _, in := range p.appends {
		stays[in.uid] = append(stays[in.uid], in.hash)
	}
	for _, uid := range uids {
		for _, c := range current[uid].copies {
			if _, gone := dropped[c]; gone {
				continue
			}
			stays[uid] = append(stays[uid], c.hash)
			if _, shared := slices.BinarySearch(p.remove, c.msg); shared {
				p.appends = append(p.appends, object{uid: uid, version: c.version, hash: c.hash, obj: c.obj})
			}
		}
	}
	return stays
}

// logDropped lists every dropped copy whose content does not stay for
// the log, once.
func (p *plan) logDropped(current map[string]*stored, dropped map[*held]string, stays map[string][]string, uids []string) {
	for _, uid := range uids {
		for _, c := range current[uid].copies {
			why, gone := dropped[c]
			if !gone || slices.Contains(stays[uid], c.hash) {
				continue
			}
			stays[uid] = append(stays[uid], c.hash)
			p.toLog = append(p.toLog, removal{held: c, uid: uid, why: why})
		}
	}
}

// keepAlarms gives the events of an uploaded object that carry no alarm
// the alarms of the same occurrence in the newest stored copy that has
// it: the owner's reminders survive a round trip through a feed, which
// has none.
func keepAlarms(in *calendar.Object, old *stored) {
	copies := slices.Clone(old.copies)
	slices.SortStableFunc(copies, func(a, b *held) int { return b.version.compare(a.version) })
	for _, ev := range in.Events() {
		if slices.ContainsFunc(ev.Children, func(c *ical.Component) bool { return c.Name == ical.CompAlarm }) {
			continue
		}
	copies:
		for _, c := range copies {
			for _, o := range c.obj.Events() {
				if ridKey(o) != ridKey(ev) {
					continue
				}
				for _, ch := range o.Children {
					if ch.Name == ical.CompAlarm {
						ev.Children = append(ev.Children, ch)
					}
				}
				break copies
			}
		}
	}
}

// permitted checks, before any write, that the uploader holds every right
// the plan needs.
func (s *Service) permitted(p plan, rights acl.Rights, lg deletedLog, r Request) error {
	name := strings.Join(r.Folder, "/")
	if len(p.appends) > 0 && !rights.Has(acl.Insert) {
		return &DeniedError{Right: acl.Insert, Folder: name, Why: "add or change events"}
	}
	if len(p.remove) > 0 {
		if !rights.Has(acl.DeleteMessages) {
			return &DeniedError{Right: acl.DeleteMessages, Folder: name, Why: "change or delete events"}
		}
		if !rights.Has(acl.Expunge) {
			return &DeniedError{Right: acl.Expunge, Folder: name, Why: "change or delete events"}
		}
	}
	// A UID new to the folder may be one deleted before: only the log
	// tells (see reconcile). An uploader who may not read it cannot tell
	// a stale copy from a new event, so they may not add events; nor may
	// one who cannot see the owner's log at all, which may exist, hidden.
	// Changing or deleting an event the folder holds needs no look at the
	// log: the folder's own copies decide.
	if p.result.Added > 0 && !lg.readable() && (lg.exists || !lg.own) {
		return &DeniedError{Right: acl.Read, Folder: s.opts.LogFolder, Why: "add events: fbpub checks there that an event added is not one deleted before"}
	}
	if len(p.toLog) > 0 {
		switch {
		case lg.exists && !lg.rights.Has(acl.Insert):
			return &DeniedError{Right: acl.Insert, Folder: s.opts.LogFolder, Why: "keep deleted and replaced events in the log"}
		case !lg.exists && !lg.own:
			// Hidden or missing: the uploader cannot tell which. Either
			// way they need to add to it, and the owner to have made it.
			return &DeniedError{Right: acl.Insert, Folder: s.opts.LogFolder, Why: "keep deleted and replaced events in the log (" + r.Owner + " must create it first if it does not exist)"}
		}
	}
	return nil
}

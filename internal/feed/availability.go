package feed

import (
	"strings"
	"time"

	"github.com/fbpub/fbpub/internal/availability"
	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/freebusy"
)

// offHours is the time of q's window outside the owner's working hours,
// as busy periods: from the VAVAILABILITY components (RFC 7953) in the
// owner's own folders among snaps (those the viewer may see), else from
// q.WorkingHours on the wall clock of zone; with neither, nothing.
// Components in other owners' folders that count for this owner (Kolab's
// incidences-for) say nothing about this owner's hours.
func offHours(q FreeBusyQuery, snaps []*Snapshot, zone *time.Location) []freebusy.Period {
	var avs []calendar.Availability
	opts := &calendar.Options{Zone: zone, Limits: calendar.Limits{Budget: calendar.NewBudget(freebusy.DefaultBudget)}}
	for _, s := range snaps {
		if !strings.EqualFold(s.Folder.Owner, q.Owner) {
			continue
		}
		for _, o := range s.Objects() {
			if len(o.Availability) > 0 {
				// What cannot be read of a component adds no working
				// time; the rest still counts.
				a, _ := o.Availabilities(q.Window.Start, q.Window.End, opts)
				avs = append(avs, a...)
			}
		}
	}
	return availability.OffHours(avs, q.WorkingHours, zone, q.Window)
}

// appendOffHoursKey appends what an answer with off hours adds to its
// render key.
func appendOffHoursKey(k []byte, h *availability.Hours) []byte {
	return append(append(k, "offhours="...), h.String()...)
}

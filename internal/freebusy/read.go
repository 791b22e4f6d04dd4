package freebusy

import "github.com/emersion/go-ical"

// Published returns the busy periods of a VFREEBUSY component as its
// FREEBUSY properties give them: FREE periods are left out, an absent or
// unknown FBTYPE is BUSY (RFC 5545 §3.2.9), unreadable values are
// skipped. The periods are neither clipped nor merged.
func Published(fb *ical.Component) []Period { return published(fb) }

package main

import (
	"log/slog"
	"sync"

	"github.com/fbpub/fbpub/metrics"
)

// unresolvedGroups returns the acl.Policy.Unresolved hook: it counts every
// evaluation that met an entry of a group whose members fbpub does not
// know, and says so in the log once per group, so that an operator can
// add the group to access.groups.
func unresolvedGroups(log *slog.Logger, m *metrics.Metrics) func(group string) {
	var logged sync.Map // group name → struct{}
	return func(group string) {
		m.UnresolvedGroups.Inc()
		if _, seen := logged.LoadOrStore(group, struct{}{}); !seen {
			log.Warn("an ACL names a group whose members fbpub does not know: its entries count against every requester (negative rights taken away, grants not given); list its members in access.groups",
				"component", "acl", "group", group)
		}
	}
}

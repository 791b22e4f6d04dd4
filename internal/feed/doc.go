// Package feed assembles what fbpub publishes, free/busy answers and .ics
// feeds, from snapshots of the IMAP folders it may read, and caches them.
//
// A Cache keeps, per published folder, the calendar objects as text (see
// message; renders decode trees from it again) and the IMAP state they
// came from, within Options.MaxBytes. A request checks the states of the folders
// of the owner it reads at most once per check interval: what a request
// costs does not depend on the size of the directory. A folder whose
// state moved is fetched again, and concurrent requests for the same work
// share one IMAP round trip and one render (golang.org/x/sync/singleflight).
// The state is always read before the fetch, so a change that lands during
// a fetch moves the state past the snapshot's and is seen at the next
// check.
//
// The files, one concern each:
//   - cache.go: Cache, Options, New, the Source it reads, shared calls.
//   - folders.go: Folder, and which folders are published and why (Explain).
//   - owners.go: the owner directory and per-owner freshness: when a
//     request's owner is checked again, and what a check publishes.
//   - discovery.go: finding owners in the background (Run, Discover) and
//     the rate-limited look-up of an owner the cache does not know.
//   - push.go: what the server announces (Changed) and what is worth
//     watching (WatchedBy, SetWatched, Watchlist).
//   - snapshot.go: Snapshot, when one is current, sharing its sync, its
//     objects decoded on demand, and the memory bound (Options.MaxBytes).
//   - sync.go: reading a folder (whole or incrementally) into a snapshot.
//   - parse.go: one message's calendar parts into objects, and what a
//     snapshot keeps of them: text, encoded once for rendering.
//   - persist.go: snapshots saved to and loaded from the state directory.
//   - dirstate.go: the directory of owners saved there too, so that a
//     restart reads known owners' states instead of listing them.
//   - render.go, views.go, availability.go: the answers (VFREEBUSY and
//     .ics), what each requester may see of them, and off-hours.
//   - answers.go: the cache of rendered answers, bounded by their bytes.
//   - replicas.go: what replicas sharing one Redis share (Replicate):
//     snapshots, owner checks and look-ups, and announced changes.
package feed

package acl

import "testing"

// fuzzIDs and fuzzRights are what FuzzPolicyFailClosed builds ACLs from:
// spellings of bob, a known group (team, without bob) and an unknown one
// (staff), in every layer and sign.
var (
	fuzzIDs = []string{
		"anyone", "authenticated", "bob", "BOB", "Bob", "-bob", "-BOB", "$team", "-$team", "!$team",
		"$staff", "-$staff", "!$staff", "-!$staff", "group:staff", "#anyone", "-#$staff", "#bob", "carol", "owner",
	}
	fuzzRights = []string{"l", "r", "lr", "w", "lrw", ""}
)

// FuzzPolicyFailClosed: for any ACL, what Policy gives a requester whose
// spelling is unconfirmed, or who may be in a group fbpub does not know,
// is never more than what the server could compute for any identity and
// membership it might really have.
func FuzzPolicyFailClosed(f *testing.F) {
	f.Add([]byte{0, 2, 5, 1})
	f.Add([]byte{1, 3, 10, 0, 11, 1})
	f.Add([]byte{0, 3, 12, 0, 2, 3})
	f.Add([]byte{4, 1, 7, 0, 8, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		pairs := map[string]string{}
		for i := 0; i+1 < len(b) && len(pairs) < 8; i += 2 {
			pairs[fuzzIDs[int(b[i])%len(fuzzIDs)]] = fuzzRights[int(b[i+1])%len(fuzzRights)]
		}
		a, err := Parse(pairs)
		if err != nil {
			t.Fatal(err)
		}
		groups := Groups{"team": {"carol"}}
		for _, o := range []*Options{nil, Cyrus(), Dovecot(""), Dovecot("alice")} {
			p := Policy{Groups: groups}
			// The server's view: bob, or BOB, or Bob, in staff or not.
			var possible []Rights
			for _, name := range []string{"bob", "BOB", "Bob"} {
				for _, member := range [][]string{nil, {"staff"}} {
					possible = append(possible, a.EffectiveWith(Requester{User: name, Groups: member}, o))
				}
			}
			got := p.effective(a, Requester{User: "BOB"}, "alice", o)
			for _, want := range possible[2:4] { // BOB himself, in staff or not
				if got&^want != 0 {
					t.Errorf("%v under %+v: unconfirmed BOB gets %q, more than %q", pairs, o, got, want)
				}
			}
			for _, want := range possible[0:2] { // bob, in staff or not
				if got&^want != 0 {
					t.Errorf("%v under %+v: unconfirmed BOB gets %q, more than bob's %q", pairs, o, got, want)
				}
			}
			confirmed := p.effective(a, Requester{User: "bob", Confirmed: true}, "alice", o)
			for _, want := range possible[0:2] {
				if confirmed&^want != 0 {
					t.Errorf("%v under %+v: bob, not known to be in staff, gets %q, more than %q", pairs, o, confirmed, want)
				}
			}
		}
	})
}

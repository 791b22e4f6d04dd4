package httpapi

import (
	"mime"
	"testing"
)

// TestContentDispositionFastPath: the shortcut writes what
// mime.FormatMediaType writes.
func TestContentDispositionFastPath(t *testing.T) {
	for _, name := range []string{"Calendar.ics", "alice@example.org.vfb", "Réunions équipe.ics", `a"b.ics`, `a\b.ics`, "a b.ics", "x;y=z.ics", ""} {
		want := mime.FormatMediaType("inline", map[string]string{"filename": name})
		if want == "" {
			want = "inline"
		}
		if got := contentDisposition(name); got != want {
			t.Errorf("contentDisposition(%q) = %q, want %q", name, got, want)
		}
	}
}

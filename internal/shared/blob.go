package shared

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// ErrTooLarge is SetBlob's answer for a blob larger than Options.MaxBlob.
var ErrTooLarge = errors.New("shared: blob larger than the bound")

// blobFormat is the first byte of a stored blob: DEFLATE (RFC 1951) of
// the bytes. Another first byte is not fbpub's and reads as a miss.
const blobFormat = 1

// SetBlob stores b under key for ttl (at least 1 ms), compressed, for
// every replica to read with GetBlob. A blob larger than Options.MaxBlob
// (uncompressed) is refused with ErrTooLarge. Redis evicts blobs by its
// maxmemory-policy (see README); a later GetBlob then misses. Without Redis,
// or while it is unreachable, SetBlob stores nothing and returns nil: the
// caller keeps its own local copy. Safe for concurrent use; b is not
// retained.
func (c *Client) SetBlob(ctx context.Context, key string, b []byte, ttl time.Duration) error {
	if len(b) > c.opts.MaxBlob {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrTooLarge, len(b), c.opts.MaxBlob)
	}
	if !c.shared() {
		c.fallback("set")
		return nil
	}
	var buf bytes.Buffer
	buf.WriteByte(blobFormat)
	zw, _ := flate.NewWriter(&buf, flate.DefaultCompression)
	zw.Write(b)
	zw.Close()
	ttl = max(ttl, time.Millisecond)
	if err := c.do(ctx, "set", func(ctx context.Context) error {
		return c.rdb.Set(ctx, c.key("blob", key), buf.Bytes(), ttl).Err()
	}); err != nil {
		c.fallback("set")
	}
	return nil
}

// GetBlob returns the bytes stored under key by any replica, and whether
// there were any. A miss is also the answer without Redis, while it is
// unreachable, and for a stored value that does not decompress within
// Options.MaxBlob bytes. Safe for concurrent use; the caller owns the
// bytes returned.
func (c *Client) GetBlob(ctx context.Context, key string) ([]byte, bool) {
	if !c.shared() {
		c.fallback("get")
		return nil, false
	}
	var stored []byte
	if err := c.do(ctx, "get", func(ctx context.Context) error {
		var err error
		stored, err = c.rdb.Get(ctx, c.key("blob", key)).Bytes()
		return err
	}); err != nil {
		c.fallback("get")
		return nil, false
	}
	if len(stored) == 0 || stored[0] != blobFormat {
		c.looked("miss")
		return nil, false
	}
	zr := flate.NewReader(bytes.NewReader(stored[1:]))
	defer zr.Close()
	b, err := io.ReadAll(io.LimitReader(zr, int64(c.opts.MaxBlob)+1))
	if err != nil || len(b) > c.opts.MaxBlob {
		c.looked("miss")
		return nil, false
	}
	c.looked("hit")
	return b, true
}

// looked counts a look-up of a blob that Redis answered, by result (hit,
// miss), in fbpub_redis_blob_requests_total.
func (c *Client) looked(result string) {
	if m := c.opts.Metrics; m != nil {
		m.SharedCache.WithLabelValues(result).Inc()
	}
}

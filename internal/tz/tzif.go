package tz

import "encoding/binary"

// encodeTZif encodes transitions as a TZif version 2 file (RFC 8536) for
// time.LoadLocationFromTZData. times are Unix times in ascending order, idx
// the index into types of the type that starts at each; types[0] is the type
// before the first transition and must not be used by idx. The version 1
// block is a minimal placeholder (readers of version 2 skip it), and the
// footer has no TZ string, so after the last transition its type holds.
func encodeTZif(times []int64, idx []uint8, types []zoneType) []byte {
	var chars []byte
	desig := make([]int, len(types))
	at := map[string]int{}
	for i, t := range types {
		p, ok := at[t.name]
		if !ok {
			p = len(chars)
			at[t.name] = p
			chars = append(chars, t.name...)
			chars = append(chars, 0)
		}
		desig[i] = p
	}

	b := make([]byte, 0, 44+6+1+44+len(times)*9+len(types)*6+len(chars)+2)
	header := func(timecnt, typecnt, charcnt int) {
		b = append(b, "TZif2"...)
		b = append(b, make([]byte, 15)...)
		for _, n := range []int{0, 0, 0, timecnt, typecnt, charcnt} { // isut, isstd, leap, time, type, char
			b = binary.BigEndian.AppendUint32(b, uint32(n))
		}
	}
	// Version 1 block: no transitions, one type (UTC, "\x00").
	header(0, 1, 1)
	b = append(b, 0, 0, 0, 0, 0, 0, 0)
	// Version 2 block.
	header(len(times), len(types), len(chars))
	for _, t := range times {
		b = binary.BigEndian.AppendUint64(b, uint64(t))
	}
	b = append(b, idx...)
	for i, t := range types {
		b = binary.BigEndian.AppendUint32(b, uint32(int32(t.off)))
		var dst byte
		if t.dst {
			dst = 1
		}
		b = append(b, dst, byte(desig[i]))
	}
	b = append(b, chars...)
	b = append(b, '\n', '\n')
	return b
}

package xzdec

import "encoding/binary"

// unBCJ undoes a BCJ branch-call filter in place. pos is the stream position
// of buf[0] (the filter's start offset). The encoders turned relative branch
// targets into absolute ones so that repeated calls compress better; decoding
// subtracts the position again. The conversions follow the xz file format's
// reference filters, whose results the tests compare with xz-utils.
func unBCJ(id uint64, buf []byte, pos uint32) {
	switch id {
	case filterX86:
		unX86(buf, pos)
	case filterARM:
		for i := 0; i+4 <= len(buf); i += 4 {
			if buf[i+3] != 0xeb {
				continue
			}
			src := (uint32(buf[i+2])<<16 | uint32(buf[i+1])<<8 | uint32(buf[i])) << 2
			dest := (src - (pos + uint32(i) + 8)) >> 2
			buf[i+2], buf[i+1], buf[i] = byte(dest>>16), byte(dest>>8), byte(dest)
		}
	case filterARMThmb:
		for i := 0; i+4 <= len(buf); i += 2 {
			if buf[i+1]&0xf8 != 0xf0 || buf[i+3]&0xf8 != 0xf8 {
				continue
			}
			src := (uint32(buf[i+1]&7)<<19 | uint32(buf[i])<<11 | uint32(buf[i+3]&7)<<8 | uint32(buf[i+2])) << 1
			dest := (src - (pos + uint32(i) + 4)) >> 1
			buf[i+1] = 0xf0 | byte(dest>>19)&7
			buf[i] = byte(dest >> 11)
			buf[i+3] = 0xf8 | byte(dest>>8)&7
			buf[i+2] = byte(dest)
			i += 2
		}
	case filterPowerPC:
		for i := 0; i+4 <= len(buf); i += 4 {
			if buf[i]>>2 != 0x12 || buf[i+3]&3 != 1 {
				continue
			}
			src := uint32(buf[i]&3)<<24 | uint32(buf[i+1])<<16 | uint32(buf[i+2])<<8 | uint32(buf[i+3]&^3)
			dest := src - (pos + uint32(i))
			buf[i] = 0x48 | byte(dest>>24)&3
			buf[i+1], buf[i+2] = byte(dest>>16), byte(dest>>8)
			buf[i+3] = buf[i+3]&3 | byte(dest)
		}
	case filterSPARC:
		for i := 0; i+4 <= len(buf); i += 4 {
			if !(buf[i] == 0x40 && buf[i+1]&0xc0 == 0) && !(buf[i] == 0x7f && buf[i+1]&0xc0 == 0xc0) {
				continue
			}
			src := binary.BigEndian.Uint32(buf[i:]) << 2
			dest := (src - (pos + uint32(i))) >> 2
			dest = ((0-(dest>>22)&1)<<22)&0x3fffffff | dest&0x3fffff | 0x40000000
			binary.BigEndian.PutUint32(buf[i:], dest)
		}
	}
}

// unX86 undoes the x86 filter, which rewrites E8/E9 (call/jmp rel32)
// operands whose top byte is 0x00 or 0xFF, skipping candidates that look
// like the tail of a preceding instruction (tracked in mask).
func unX86(buf []byte, pos uint32) {
	allowed := [8]bool{true, true, true, false, true, false, false, false}
	bitNum := [8]uint32{0, 1, 2, 2, 3, 3, 3, 3}
	msb := func(b byte) bool { return b == 0 || b == 0xff }
	var mask uint32
	prev := pos - 5
	for i := 0; i+5 <= len(buf); {
		b := buf[i]
		if b != 0xe8 && b != 0xe9 {
			i++
			continue
		}
		off := pos + uint32(i) - prev
		prev = pos + uint32(i)
		if off > 5 {
			mask = 0
		} else {
			for j := uint32(0); j < off; j++ {
				mask &= 0x77
				mask <<= 1
			}
		}
		b = buf[i+4]
		if msb(b) && allowed[(mask>>1)&7] && mask>>1 < 0x10 {
			src := uint32(b)<<24 | uint32(buf[i+3])<<16 | uint32(buf[i+2])<<8 | uint32(buf[i+1])
			var dest uint32
			for {
				dest = src - (pos + uint32(i) + 5)
				if mask == 0 {
					break
				}
				n := bitNum[(mask>>1)&7]
				if !msb(byte(dest >> (24 - n*8))) {
					break
				}
				src = dest ^ (1<<(32-n*8) - 1)
			}
			buf[i+4] = ^byte((dest>>24)&1 - 1)
			buf[i+3], buf[i+2], buf[i+1] = byte(dest>>16), byte(dest>>8), byte(dest)
			i += 5
			mask = 0
		} else {
			i++
			mask |= 1
			if msb(b) {
				mask |= 0x10
			}
		}
	}
}

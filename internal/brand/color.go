package brand

import (
	"math"
	"strconv"
)

// Contrast is the WCAG 2 contrast ratio of two #rrggbb colours, from 1
// (same luminance) to 21 (black on white). Invalid colours give 1.
func Contrast(a, b string) float64 {
	la, ok1 := luminance(a)
	lb, ok2 := luminance(b)
	if !ok1 || !ok2 {
		return 1
	}
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

func luminance(c string) (float64, bool) {
	if !colorRE.MatchString(c) {
		return 0, false
	}
	var ch [3]float64
	for i := range ch {
		v, _ := strconv.ParseUint(c[1+2*i:3+2*i], 16, 8)
		s := float64(v) / 255
		if s <= 0.04045 {
			ch[i] = s / 12.92
		} else {
			ch[i] = math.Pow((s+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*ch[0] + 0.7152*ch[1] + 0.0722*ch[2], true
}

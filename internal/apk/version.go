package apk

// Version ordering as apk-tools src/version.c defines it. A version is
// digit{.digit}...{letter}{_suffix{digits}}...{~hash}{-rN}; tokens of the
// same kind are compared left to right, and where one version runs out of
// tokens or changes kind first, the token kinds decide.

// Token kinds, in apk's order (the order matters for the tail rules).
const (
	vtInitialDigit = iota
	vtDigit
	vtLetter
	vtSuffix
	vtSuffixNo
	vtCommitHash
	vtRevisionNo
	vtEnd
	vtInvalid
)

// Suffixes, in apk's order: those before sufNone sort before a release.
const (
	sufInvalid = iota
	sufAlpha
	sufBeta
	sufPre
	sufRC
	sufNone
	sufCVS
	sufSVN
	sufGit
	sufHg
	sufP
)

var suffixes = map[string]int{"alpha": sufAlpha, "beta": sufBeta, "pre": sufPre, "rc": sufRC,
	"cvs": sufCVS, "svn": sufSVN, "git": sufGit, "hg": sufHg, "p": sufP}

type vscan struct {
	s      string // rest of the version
	tok    int
	suffix int
	num    uint64 // wraps like apk's uint64 on absurdly long digit runs
	val    string
}

func (t *vscan) digits() {
	i := 0
	t.num = 0
	for i < len(t.s) && t.s[i] >= '0' && t.s[i] <= '9' {
		t.num = t.num*10 + uint64(t.s[i]-'0')
		i++
	}
	t.val, t.s = t.s[:i], t.s[i:]
	if i == 0 {
		t.tok = vtInvalid
	}
}

func (t *vscan) span(ok func(c byte) bool) {
	i := 0
	for i < len(t.s) && ok(t.s[i]) {
		i++
	}
	t.val, t.s = t.s[:i], t.s[i:]
}

func (t *vscan) first(s string) {
	t.s, t.tok = s, vtInitialDigit
	t.digits()
}

func (t *vscan) next() {
	if t.s == "" {
		t.tok = vtEnd
		return
	}
	c := t.s[0]
	switch {
	case c >= 'a' && c <= 'z':
		if t.tok > vtDigit {
			t.tok = vtInvalid
			return
		}
		t.val, t.s, t.tok = t.s[:1], t.s[1:], vtLetter
	case c == '.' || c >= '0' && c <= '9':
		if c == '.' {
			if t.tok > vtDigit {
				t.tok = vtInvalid
				return
			}
			t.s = t.s[1:]
		}
		switch t.tok {
		case vtInitialDigit, vtDigit:
			t.tok = vtDigit
		case vtSuffix:
			t.tok = vtSuffixNo
		default:
			t.tok = vtInvalid
			return
		}
		t.digits()
	case c == '_':
		if t.tok > vtSuffixNo {
			t.tok = vtInvalid
			return
		}
		t.s = t.s[1:]
		t.span(func(c byte) bool { return c >= 'a' && c <= 'z' })
		t.suffix = suffixes[t.val]
		if t.suffix == sufInvalid {
			t.tok = vtInvalid
			return
		}
		t.tok = vtSuffix
	case c == '~':
		if t.tok >= vtCommitHash {
			t.tok = vtInvalid
			return
		}
		t.s = t.s[1:]
		t.span(func(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' })
		if t.val == "" {
			t.tok = vtInvalid
			return
		}
		t.tok = vtCommitHash
	case c == '-':
		if t.tok >= vtRevisionNo || len(t.s) < 2 || t.s[1] != 'r' {
			t.tok = vtInvalid
			return
		}
		t.s, t.tok = t.s[2:], vtRevisionNo
		t.digits()
	default:
		t.tok = vtInvalid
	}
}

func cmp3[T int | uint64 | byte](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// blobSort is apk_blob_sort: bytes, then length.
func blobSort(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return cmp3(a[i], b[i])
		}
	}
	return cmp3(len(a), len(b))
}

func tokenCmp(a, b *vscan) int {
	switch a.tok {
	case vtDigit:
		if a.val[0] == '0' || b.val[0] == '0' {
			return blobSort(a.val, b.val) // leading zero: compare as text
		}
		return cmp3(a.num, b.num)
	case vtInitialDigit, vtSuffixNo, vtRevisionNo:
		return cmp3(a.num, b.num)
	case vtLetter:
		return cmp3(a.val[0], b.val[0])
	case vtSuffix:
		return cmp3(a.suffix, b.suffix)
	}
	return blobSort(a.val, b.val)
}

// CompareVersions orders two apk versions as apk_version_compare does:
// -1 if a is older than b, +1 if newer, 0 if equal. Invalid versions
// compare too (as apk does), but the result means little; ValidVersion
// tells them apart. Examples (checked against apk): 1.2.3-r1 < 1.2.3-r10,
// 1.0_rc1 < 1.0 < 1.0-r1 < 1.0_p1, 1.0 < 1.0~abc < 1.0~abd, 1.02 < 1.1.
func CompareVersions(a, b string) int {
	var ta, tb vscan
	ta.first(a)
	tb.first(b)
	for ta.tok == tb.tok && ta.tok < vtEnd {
		if r := tokenCmp(&ta, &tb); r != 0 {
			return r
		}
		ta.next()
		tb.next()
	}
	switch {
	case ta.tok == tb.tok:
		return 0
	case ta.tok == vtSuffix && ta.suffix < sufNone:
		return -1
	case tb.tok == vtSuffix && tb.suffix < sufNone:
		return 1
	case ta.tok > tb.tok:
		return -1
	case tb.tok > ta.tok:
		return 1
	}
	return 0
}

// ValidVersion reports whether apk accepts v as a version (apk_version_validate).
func ValidVersion(v string) bool {
	var t vscan
	for t.first(v); t.tok < vtEnd; t.next() {
	}
	return t.tok == vtEnd
}

package uci

import (
	"fmt"
	"strings"
)

// statement is the words of one logical line.
type statement struct {
	words []string
	line  int
}

type lexer struct {
	name string
	src  string
	pos  int
	line int
}

func (lx *lexer) errorf(line int, format string, args ...any) error {
	return &Error{File: lx.name, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// statement returns the next statement, an empty one for blank and comment
// lines, or nil at the end of the input.
func (lx *lexer) statement() (*statement, error) {
	if lx.pos >= len(lx.src) {
		return nil, nil
	}
	st := &statement{line: lx.line}
	for lx.pos < len(lx.src) {
		c := lx.src[lx.pos]
		switch {
		case c == '\n':
			lx.pos++
			lx.line++
			return st, nil
		case c == ' ' || c == '\t':
			lx.pos++
		case c == '\r':
			return nil, lx.errorf(lx.line, "carriage return in file (convert CRLF line ends to LF)")
		case c == '#':
			for lx.pos < len(lx.src) && lx.src[lx.pos] != '\n' {
				lx.pos++
			}
		case c == '\\' && lx.pos+1 < len(lx.src) && lx.src[lx.pos+1] == '\n':
			// A backslash before a line end between words joins the lines.
			lx.pos += 2
			lx.line++
		default:
			if len(st.words) == 0 {
				st.line = lx.line
			}
			w, err := lx.word()
			if err != nil {
				return nil, err
			}
			st.words = append(st.words, w)
		}
	}
	return st, nil
}

// word reads one word made of adjacent unquoted and quoted pieces.
func (lx *lexer) word() (string, error) {
	var b strings.Builder
	for lx.pos < len(lx.src) {
		c := lx.src[lx.pos]
		switch c {
		case ' ', '\t', '\n':
			return b.String(), nil
		case '\r':
			return "", lx.errorf(lx.line, "carriage return in file (convert CRLF line ends to LF)")
		case '\'':
			start := lx.line
			lx.pos++
			end := strings.IndexByte(lx.src[lx.pos:], '\'')
			if end < 0 {
				return "", lx.errorf(start, "unterminated ' quote")
			}
			piece := lx.src[lx.pos : lx.pos+end]
			lx.line += strings.Count(piece, "\n")
			b.WriteString(piece)
			lx.pos += end + 1
		case '"':
			start := lx.line
			lx.pos++
			closed := false
			for lx.pos < len(lx.src) && !closed {
				d := lx.src[lx.pos]
				switch d {
				case '"':
					closed = true
					lx.pos++
				case '\\':
					if err := lx.escape(&b, start, `"`); err != nil {
						return "", err
					}
				default:
					if d == '\n' {
						lx.line++
					}
					b.WriteByte(d)
					lx.pos++
				}
			}
			if !closed {
				return "", lx.errorf(start, `unterminated " quote`)
			}
		case '\\':
			if err := lx.escape(&b, lx.line, ""); err != nil {
				return "", err
			}
		default:
			b.WriteByte(c)
			lx.pos++
		}
	}
	return b.String(), nil
}

// escape handles a backslash at lx.pos: before a line end it joins lines,
// otherwise it stands for the next character.
func (lx *lexer) escape(b *strings.Builder, start int, inQuote string) error {
	if lx.pos+1 >= len(lx.src) {
		if inQuote != "" {
			return lx.errorf(start, "unterminated %s quote", inQuote)
		}
		return lx.errorf(lx.line, "backslash at end of file")
	}
	next := lx.src[lx.pos+1]
	lx.pos += 2
	if next == '\n' {
		lx.line++
		return nil
	}
	b.WriteByte(next)
	return nil
}

// Package torctl is a small client for Tor's control port: PROTOCOLINFO,
// cookie and SAFECOOKIE authentication, and GETINFO for the few keys the
// router needs (version, version status, bootstrap phase, consensus time).
//
// The control port is local, but the reply parser still treats it as
// untrusted input with hard limits, because it runs in the router's update
// daemon and a misconfigured port may point at something else.
package torctl

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Limits on what one reply may hold. The keys the router asks for answer
// in a few hundred bytes; consensus documents are never requested.
const (
	MaxLineLen   = 4096
	MaxReplySize = 64 << 10
	MaxLines     = 512
)

var (
	// ErrProtocol: the peer sent something that is not a control-port
	// reply, or one over the limits.
	ErrProtocol = errors.New("torctl: protocol error")
	// ErrUnavailable: Tor does not have the requested information yet
	// (551) or does not know the key (552), e.g. no consensus offline.
	ErrUnavailable = errors.New("torctl: information not available")
	// ErrAuth: authentication failed or no usable method was offered.
	ErrAuth = errors.New("torctl: authentication failed")
)

// Reply is one control-port reply: one or more lines with the same status
// code, the last of which ends the reply.
type Reply struct {
	Code  int
	Lines []Line
}

// Line is one reply line. A line written as "250+key=" is followed by data
// lines up to a lone "."; those are in Data, dot-unescaped.
type Line struct {
	Text    string
	HasData bool
	Data    []string
}

// ReplyError is a reply whose status is not 2xx.
type ReplyError struct {
	Code int
	Text string
}

func (e *ReplyError) Error() string { return fmt.Sprintf("torctl: tor replied %d %s", e.Code, e.Text) }

// Unwrap makes 551 and 552 match ErrUnavailable.
func (e *ReplyError) Unwrap() error {
	if e.Code == 551 || e.Code == 552 {
		return ErrUnavailable
	}
	return nil
}

// Err returns nil for a 2xx reply and a *ReplyError otherwise.
func (r *Reply) Err() error {
	if r.Code >= 200 && r.Code < 300 {
		return nil
	}
	text := ""
	if len(r.Lines) > 0 {
		text = r.Lines[len(r.Lines)-1].Text
	}
	return &ReplyError{Code: r.Code, Text: text}
}

// ReadReply reads one reply. br should be at least MaxLineLen+2 bytes
// large (NewReader makes one); a longer line is ErrProtocol.
func ReadReply(br *bufio.Reader) (*Reply, error) {
	rep := &Reply{}
	total := 0
	readLine := func() (string, error) {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) || len(b) > MaxLineLen+2 {
			return "", fmt.Errorf("%w: line longer than %d bytes", ErrProtocol, MaxLineLen)
		}
		if err != nil {
			if errors.Is(err, io.EOF) && (len(b) > 0 || len(rep.Lines) > 0) {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		total += len(b)
		if total > MaxReplySize {
			return "", fmt.Errorf("%w: reply larger than %d bytes", ErrProtocol, MaxReplySize)
		}
		b = b[:len(b)-1]
		b = bytes.TrimSuffix(b, []byte{'\r'})
		return string(b), nil
	}
	count := 0
	for {
		s, err := readLine()
		if err != nil {
			return nil, err
		}
		if count++; count > MaxLines {
			return nil, fmt.Errorf("%w: more than %d lines", ErrProtocol, MaxLines)
		}
		if len(s) < 4 {
			return nil, fmt.Errorf("%w: short line %q", ErrProtocol, s)
		}
		code, ok := parseCode(s[:3])
		if !ok {
			return nil, fmt.Errorf("%w: bad status code in %q", ErrProtocol, clip(s))
		}
		if len(rep.Lines) > 0 && code != rep.Code {
			return nil, fmt.Errorf("%w: status %d inside a %d reply", ErrProtocol, code, rep.Code)
		}
		rep.Code = code
		line := Line{Text: s[4:]}
		switch s[3] {
		case ' ':
			rep.Lines = append(rep.Lines, line)
			return rep, nil
		case '-':
		case '+':
			line.HasData = true
			line.Data = []string{}
			for {
				d, err := readLine()
				if err != nil {
					return nil, err
				}
				if count++; count > MaxLines {
					return nil, fmt.Errorf("%w: more than %d lines", ErrProtocol, MaxLines)
				}
				if d == "." {
					break
				}
				d = strings.TrimPrefix(d, ".")
				line.Data = append(line.Data, d)
			}
		default:
			return nil, fmt.Errorf("%w: bad separator %q in %q", ErrProtocol, s[3], clip(s))
		}
		rep.Lines = append(rep.Lines, line)
	}
}

func parseCode(s string) (int, bool) {
	n := 0
	for i := 0; i < 3; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n >= 100
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// encode writes r in wire form. ReadReply(encode(r)) gives r back; the
// fuzz test relies on it.
func (r *Reply) encode() []byte {
	var b bytes.Buffer
	for i, l := range r.Lines {
		sep := byte('-')
		switch {
		case i == len(r.Lines)-1:
			sep = ' '
		case l.HasData:
			sep = '+'
		}
		fmt.Fprintf(&b, "%03d%c%s\r\n", r.Code, sep, l.Text)
		if sep == '+' {
			for _, d := range l.Data {
				if strings.HasPrefix(d, ".") {
					b.WriteByte('.')
				}
				b.WriteString(d)
				b.WriteString("\r\n")
			}
			b.WriteString(".\r\n")
		}
	}
	return b.Bytes()
}

// Package uci parses OpenWrt UCI configuration files (/etc/config/*) and
// lints them against the section types each file may hold.
//
// The parser follows the quoting rules of OpenWrt's libuci: a statement is
// a keyword and its arguments on one line; an argument is made of adjacent
// unquoted, 'single-quoted' and "double-quoted" pieces; a backslash escapes
// the next character outside single quotes and joins lines when it ends
// one; '#' at the start of a word begins a comment. Values may be empty
// only when quoted.
//
// It exists so the build can prove, before an image is made, that every
// configuration file it renders is one the router will read the way we
// meant. It is pure: bytes in, values or errors out.
package uci

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// File is a parsed UCI file.
type File struct {
	// Name is what errors call the file, usually its path.
	Name string
	// Package is set when the file has a `package` statement.
	Package  string
	Sections []*Section
}

// Section is one `config` block.
type Section struct {
	Type string
	// Name is empty for an anonymous section.
	Name    string
	Line    int
	Options []*Option
}

// Option is one `option` or the collected `list` statements of one name.
type Option struct {
	Name   string
	Values []string
	// List is true for `list` statements; an option has one value.
	List bool
	Line int
}

// Error is a problem at a place in a file.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// maxFileSize bounds what Parse reads; real config files are a few KiB.
const maxFileSize = 1 << 20

// Parse reads a UCI file. name appears in error messages.
func Parse(name string, r io.Reader) (*File, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("uci: reading %s: %w", name, err)
	}
	if len(data) > maxFileSize {
		return nil, &Error{File: name, Msg: fmt.Sprintf("file is larger than %d bytes", maxFileSize)}
	}
	return ParseBytes(name, data)
}

// ParseBytes is Parse over a byte slice.
func ParseBytes(name string, data []byte) (*File, error) {
	f := &File{Name: name}
	lx := &lexer{name: name, src: string(data), line: 1}
	var cur *Section
	for {
		stmt, err := lx.statement()
		if err != nil {
			return nil, err
		}
		if stmt == nil {
			return f, nil
		}
		if len(stmt.words) == 0 {
			continue
		}
		if err := f.apply(&cur, stmt); err != nil {
			return nil, err
		}
	}
}

func (f *File) apply(cur **Section, st *statement) error {
	errorf := func(format string, args ...any) error {
		return &Error{File: f.Name, Line: st.line, Msg: fmt.Sprintf(format, args...)}
	}
	kw, args := st.words[0], st.words[1:]
	switch kw {
	case "package":
		if len(args) != 1 {
			return errorf("package: want 1 argument, got %d", len(args))
		}
		if len(f.Sections) > 0 || f.Package != "" {
			return errorf("package: must be the first statement")
		}
		if !ValidPackage(args[0]) {
			return errorf("package: invalid name %q", args[0])
		}
		f.Package = args[0]
	case "config":
		if len(args) < 1 {
			return errorf("config: missing section type")
		}
		if len(args) > 2 {
			return errorf("config: too many arguments")
		}
		if !ValidType(args[0]) {
			return errorf("config: invalid section type %q", args[0])
		}
		s := &Section{Type: args[0], Line: st.line}
		if len(args) == 2 {
			if !ValidName(args[1]) {
				return errorf("config: invalid section name %q (letters, digits and _ only)", args[1])
			}
			s.Name = args[1]
		}
		f.Sections = append(f.Sections, s)
		*cur = s
	case "option", "list":
		if *cur == nil {
			return errorf("%s outside of a config section", kw)
		}
		if len(args) < 1 {
			return errorf("%s: missing name", kw)
		}
		if len(args) < 2 {
			return errorf("%s %s: missing value (write '' for an empty value)", kw, args[0])
		}
		if len(args) > 2 {
			return errorf("%s %s: too many arguments (quote values that contain spaces)", kw, args[0])
		}
		if !ValidName(args[0]) {
			return errorf("%s: invalid name %q (letters, digits and _ only)", kw, args[0])
		}
		return (*cur).add(f.Name, st.line, kw == "list", args[0], args[1])
	default:
		return errorf("unknown statement %q (want package, config, option or list)", kw)
	}
	return nil
}

// add records an option. libuci lets a later `option` replace an earlier
// one and turns an option into a list when `list` follows; both are
// almost always mistakes in a file a person or template wrote, so they are
// errors here.
func (s *Section) add(file string, line int, list bool, name, value string) error {
	for _, o := range s.Options {
		if o.Name != name {
			continue
		}
		if list && o.List {
			o.Values = append(o.Values, value)
			return nil
		}
		return &Error{File: file, Line: line, Msg: fmt.Sprintf("%s %q already set at line %d", kindOf(list), name, o.Line)}
	}
	s.Options = append(s.Options, &Option{Name: name, Values: []string{value}, List: list, Line: line})
	return nil
}

func kindOf(list bool) string {
	if list {
		return "list"
	}
	return "option"
}

// Get returns the value of a single-valued option.
func (s *Section) Get(name string) (string, bool) {
	for _, o := range s.Options {
		if o.Name == name && !o.List {
			return o.Values[0], true
		}
	}
	return "", false
}

// List returns the values of a list option, nil if there is none.
func (s *Section) List(name string) []string {
	for _, o := range s.Options {
		if o.Name == name && o.List {
			return o.Values
		}
	}
	return nil
}

// Section returns the named section, nil if there is none.
func (f *File) Section(name string) *Section {
	for _, s := range f.Sections {
		if s.Name != "" && s.Name == name {
			return s
		}
	}
	return nil
}

// SectionsOfType returns the sections of one type in file order.
func (f *File) SectionsOfType(typ string) []*Section {
	var out []*Section
	for _, s := range f.Sections {
		if s.Type == typ {
			out = append(out, s)
		}
	}
	return out
}

// ValidName reports whether s is a valid section or option name: libuci
// allows ASCII letters, digits and underscore.
func ValidName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '_' {
			return false
		}
	}
	return true
}

// ValidType reports whether s is a valid section type: any printable ASCII
// except space, as in libuci.
func ValidType(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}

// ValidPackage reports whether s is a valid package (file) name: letters,
// digits, underscore and hyphen.
func ValidPackage(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// Quote returns v as one UCI word that parses back to v. Single quotes
// take everything literally, so only a single quote itself needs care: it
// ends the quoted piece, is written escaped, and a new piece starts.
func Quote(v string) string {
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// ErrNoSchema is returned by Lint for a file it has no section types for.
var ErrNoSchema = errors.New("uci: no schema for this file")

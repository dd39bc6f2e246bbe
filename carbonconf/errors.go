package carbonconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// ParseError reports a document that cannot be read: where, and what was
// expected there. Line and Col are 1-based; Col counts bytes. The Read*
// functions leave File empty; the Load* functions and LoadNode set it.
type ParseError struct {
	File string // the file name, or "" when read from a reader
	Line int    // 1-based line of the offending input
	Col  int    // 1-based byte column of the offending input
	Err  error  // what was expected and what was found
}

// Error returns "file:line:col: message".
func (e *ParseError) Error() string {
	name := e.File
	if name == "" {
		name = "input"
	}
	return fmt.Sprintf("carbonconf: %s:%d:%d: %v", name, e.Line, e.Col, e.Err)
}

// Unwrap returns the underlying reason.
func (e *ParseError) Unwrap() error { return e.Err }

// parseErrorJSON is the JSON form of a ParseError.
type parseErrorJSON struct {
	File string
	Line int
	Col  int
	Err  string
}

// MarshalJSON encodes the error as {"File", "Line", "Col", "Err"} with Err
// the reason's text ("" when nil), so a list such as LBConf.Warnings prints
// usefully: most error values have no exported fields and would encode as
// {}.
func (e *ParseError) MarshalJSON() ([]byte, error) {
	v := parseErrorJSON{File: e.File, Line: e.Line, Col: e.Col}
	if e.Err != nil {
		v.Err = e.Err.Error()
	}
	return json.Marshal(v)
}

// UnmarshalJSON decodes what MarshalJSON encodes; Err becomes an error with
// the same text (not the original value, so errors.Is cannot match it).
func (e *ParseError) UnmarshalJSON(b []byte) error {
	var v parseErrorJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*e = ParseError{File: v.File, Line: v.Line, Col: v.Col}
	if v.Err != "" {
		e.Err = errors.New(v.Err)
	}
	return nil
}

// MaxDepth is how deeply the XML readers let elements nest. Carbon's files
// nest a dozen levels; the bound keeps a hostile file from costing memory
// and time in proportion to the square of its depth anywhere a path is
// followed from the root.
const MaxDepth = 10_000

// ErrTooDeep is wrapped by the *ParseError of a document whose elements
// nest more than MaxDepth levels; the error is at the first element too
// deep.
var ErrTooDeep = errors.New("elements nested too deeply")

// ErrEncoding is wrapped by the *ParseError of a document holding a byte
// its encoding does not allow: invalid UTF-8 in a document that declares
// UTF-8 or nothing (loadbalancer.conf declares nothing), a byte above 0x7F
// in one that declares US-ASCII, one of the five bytes windows-1252 leaves
// undefined. XML 1.0 makes it a fatal error (§4.3.3); read leniently it
// would become U+FFFD in a value.
var ErrEncoding = errors.New("not in the document's encoding")

// ErrForbiddenChar is wrapped by the *ParseError of a document holding a
// character XML 1.0 does not allow (§2.2): a control character other than
// tab, line feed and carriage return, U+FFFE or U+FFFF, whether written
// as is or as a character reference such as "&#0;".
var ErrForbiddenChar = errors.New("character XML does not allow")

// ErrUndefinedEntity is wrapped by the *ParseError of a document that
// refers to an entity (&name;) that is neither one of the five XML
// predefines nor declared in its DOCTYPE (XML 1.0 §4.1, WFC: Entity
// Declared). A document whose DOCTYPE names an external subset may refer
// to any entity.
var ErrUndefinedEntity = errors.New("undefined entity")

// ErrNotNumber is wrapped by a *ValueError when a numeric setting holds
// something else, such as an installer placeholder (SC_PORT_OFFSET).
var ErrNotNumber = errors.New("not a number")

// ErrUnknownVariable is wrapped by the error Expand returns when a ${name}
// has no value.
var ErrUnknownVariable = errors.New("unknown variable")

// ErrNoFiles is returned by LoadNode when a product home holds none of the
// configuration files it reads.
var ErrNoFiles = errors.New("no Carbon configuration files")

// ValueError reports a setting whose value cannot be used, such as a port
// that is not a number. Documents still read; the error appears where the
// value is used (Node.Identity) and as a Lint finding.
type ValueError struct {
	File  string // the file the value is in
	Line  int    // 1-based line, 0 when unknown
	Col   int    // 1-based byte column, 0 when unknown
	Name  string // the setting, e.g. "Ports/Offset"
	Value string // the value as written
	Err   error  // ErrNotNumber, or a range error
}

// Error returns "file:line:col: name "value": reason".
func (e *ValueError) Error() string {
	return fmt.Sprintf("carbonconf: %s:%d:%d: %s %q: %v", displayName(e.File), e.Line, e.Col, e.Name, e.Value, e.Err)
}

// Unwrap returns the reason, usually ErrNotNumber.
func (e *ValueError) Unwrap() error { return e.Err }

// Field is one modelled value as written in a file and where it is. A zero
// Line means the setting is absent (or only present inside a comment).
type Field struct {
	Value string // the text or attribute value, entities decoded, trimmed
	Line  int    // 1-based line of the element or attribute, 0 when absent
	Col   int    // 1-based byte column, 0 when absent
}

// Set reports whether the field is present in the file.
func (f Field) Set() bool { return f.Line > 0 }

// Int parses the value as a decimal integer. The error is a *ValueError
// wrapping ErrNotNumber; file and name are copied into it.
func (f Field) Int(file, name string) (int, error) {
	n, err := strconv.Atoi(f.Value)
	if err != nil {
		return 0, &ValueError{File: file, Line: f.Line, Col: f.Col, Name: name, Value: f.Value, Err: ErrNotNumber}
	}
	return n, nil
}

// Bool reports whether the value is "true" (any case).
func (f Field) Bool() bool { return equalFold(f.Value, "true") }

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

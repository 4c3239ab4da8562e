package secrets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"

	"github.com/ringg/ringg-ci/runner/gcpauth"
)

// ErrInvalid marks every validation problem Build reports; check it with
// errors.Is.
var ErrInvalid = errors.New("invalid secret input")

// Input names used in problems, so a person knows which document to fix.
const (
	appEnvInput   = "app secrets JSON"
	gcpCredsInput = "GCP credentials JSON"
)

// maxProblems bounds the report so a pasted megabyte of junk does not produce
// a megabyte of error text.
const maxProblems = 50

// envName is a portable environment variable name: what a POSIX shell and
// most libraries can read. Other keys are allowed (see checkKey) but warned
// about.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Problem is one thing wrong with a secret input. It names the input and the
// key or field, never a value.
type Problem struct {
	Input string // which document: "app secrets JSON" or "GCP credentials JSON"
	Key   string // offending key or field, when Keyed
	Keyed bool   // false for problems with the whole document
	Msg   string // what is wrong and what to do
}

// Error implements error.
func (p *Problem) Error() string {
	if !p.Keyed {
		return p.Input + ": " + p.Msg
	}
	what := "key"
	if p.Input == gcpCredsInput {
		what = "field"
	}
	return describe(p.Input, what, p.Key, p.Msg)
}

// describe writes a message about one key or field of an input, the way
// problems and warnings both read: `app secrets JSON: key "PORT": ...`.
func describe(input, what, key, msg string) string {
	return fmt.Sprintf("%s: %s %s: %s", input, what, quoteKey(key), msg)
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (p *Problem) Unwrap() error { return ErrInvalid }

// quoteKey quotes a key for a message, shortening absurdly long ones.
func quoteKey(k string) string {
	const max = 80
	if len(k) <= max {
		return fmt.Sprintf("%q", k)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(k[cut]) {
		cut--
	}
	return fmt.Sprintf("%q… (%d bytes)", k[:cut], len(k))
}

// problems collects the Problems and warnings of one input, each list
// bounded by maxProblems.
type problems struct {
	input      string
	list       []error
	extra      int
	warns      []string
	extraWarns int
}

// key adds a problem with one key or field.
func (ps *problems) key(key, format string, args ...any) {
	ps.add(&Problem{Input: ps.input, Key: key, Keyed: true, Msg: fmt.Sprintf(format, args...)})
}

// doc adds a problem with the whole document.
func (ps *problems) doc(format string, args ...any) {
	ps.add(&Problem{Input: ps.input, Msg: fmt.Sprintf(format, args...)})
}

func (ps *problems) add(p *Problem) {
	if len(ps.list) >= maxProblems {
		ps.extra++
		return
	}
	ps.list = append(ps.list, p)
}

// warnKey adds a warning about one key: the input is accepted, but a person
// should look at it.
func (ps *problems) warnKey(key, format string, args ...any) {
	ps.warn(describe(ps.input, "key", key, fmt.Sprintf(format, args...)))
}

// warnDoc adds a warning about the whole document.
func (ps *problems) warnDoc(format string, args ...any) {
	ps.warn(ps.input + ": " + fmt.Sprintf(format, args...))
}

func (ps *problems) warn(msg string) {
	if len(ps.warns) >= maxProblems {
		ps.extraWarns++
		return
	}
	ps.warns = append(ps.warns, msg)
}

func (ps *problems) warnings() []string {
	if ps.extraWarns > 0 {
		return append(ps.warns, fmt.Sprintf("%s: %d more warnings not shown; resolve the ones above to see them", ps.input, ps.extraWarns))
	}
	return ps.warns
}

func (ps *problems) errs() []error {
	if ps.extra > 0 {
		return append(ps.list, &Problem{Input: ps.input, Msg: fmt.Sprintf("%d more problems not shown; fix the ones above and run again", ps.extra)})
	}
	return ps.list
}

// nextMember reads one key and its raw value from inside an object.
func nextMember(dec *json.Decoder) (string, json.RawMessage, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", nil, err
	}
	key, ok := tok.(string)
	if !ok {
		return "", nil, errors.New("object key is not a string")
	}
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return key, nil, err
	}
	return key, raw, nil
}

// parseCreds validates a Google credentials document; the bytes are kept as
// given, so the app reads exactly what was provided.
func parseCreds(doc []byte) []error {
	ps := &problems{input: gcpCredsInput}
	if !checkDocument(ps, doc) {
		return ps.errs()
	}
	if len(doc) > corev1.MaxSecretSize-len(credsKey) {
		ps.doc("is %d bytes, over the Kubernetes Secret limit of %d bytes; check that the right file was given", len(doc), corev1.MaxSecretSize)
		return ps.errs()
	}
	if !checkSyntax(ps, doc) {
		return ps.errs()
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(doc, &fields); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			ps.doc("must be a JSON object (a Google credentials file), got %s", ute.Value)
		} else {
			ps.doc("could not be read as a JSON object; check that the right file was given")
		}
		return ps.errs()
	}
	if fields == nil { // the document was null
		ps.doc("must be a JSON object (a Google credentials file), got null")
		return ps.errs()
	}
	var typ string
	raw, ok := fields["type"]
	switch {
	case !ok:
		ps.key("type", "is missing; a Google credentials file has \"type\": one of %s", strings.Join(credsTypeNames(), ", "))
		return ps.errs()
	case json.Unmarshal(raw, &typ) != nil:
		ps.key("type", "is not a string; it must be one of %s", strings.Join(credsTypeNames(), ", "))
		return ps.errs()
	}
	i := slices.IndexFunc(gcpauth.CredentialTypes(), func(c gcpauth.CredentialType) bool { return c.Name == typ })
	if i < 0 {
		// The value is not echoed: a mangled paste could put anything here.
		ps.key("type", "is not a recognised credentials type; it must be one of %s", strings.Join(credsTypeNames(), ", "))
		return ps.errs()
	}
	for _, f := range gcpauth.CredentialTypes()[i].Missing(fields) {
		if _, ok := fields[f]; !ok {
			ps.key(f, "is missing, and a %s credentials file needs it; download the file again", typ)
		} else {
			ps.key(f, "is empty or null, and a %s credentials file needs it; download the file again", typ)
		}
	}
	return ps.errs()
}

// checkSyntax reports the first syntax error of a document by position.
// encoding/json's decoder reports offsets relative to its buffer, but
// Unmarshal checks the whole input first and reports an absolute offset.
//
// The problem names no key. In a document that does not parse, what a
// parser reads as a key after the first string value may be a piece of that
// value: {"A": "x", "B": "y" "C": 1} is a missing comma after "y", or the
// value x", "B": "y with its quotes unescaped. The bytes are the same, so
// no rule can tell the two apart; the line and column are exact either way.
func checkSyntax(ps *problems, doc []byte) bool {
	err := json.Unmarshal(doc, new(json.RawMessage))
	if err == nil {
		return true
	}
	ps.doc("%s", syntaxProblem(doc, err))
	return false
}

// checkDocument reports problems that make a document unreadable before any
// parsing: empty input and invalid UTF-8 (which encoding/json would silently
// replace, changing the value).
func checkDocument(ps *problems, doc []byte) bool {
	if len(bytes.TrimSpace(doc)) == 0 {
		ps.doc("is empty; give a JSON object, or leave the input unset (not empty) to keep the deployed Secret")
		return false
	}
	if !utf8.Valid(doc) {
		off := 0
		for off < len(doc) {
			r, n := utf8.DecodeRune(doc[off:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			off += n
		}
		line, col := position(doc, int64(off))
		ps.doc("is not valid UTF-8 at line %d, column %d; save it as UTF-8", line, col)
		return false
	}
	return true
}

// syntaxProblem describes a JSON syntax error by position. encoding/json's
// messages can quote a character of the input, which may belong to a secret,
// so the character is removed.
func syntaxProblem(doc []byte, err error) string {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return "is not valid JSON; check quotes and commas"
	}
	off := se.Offset - 1 // the offending byte was the last one read
	var what, hint string
	switch msg := se.Error(); {
	case strings.HasPrefix(msg, "unexpected end"):
		off = int64(len(doc))
		what = "ends early (a closing quote, brace or value is missing)"
	case strings.HasSuffix(msg, "after top-level value"):
		what = "has unexpected data after the JSON value"
		hint = "; remove it"
	default:
		what = "is not valid JSON (" + redactSyntax(msg) + ")"
		switch {
		case strings.HasSuffix(msg, "in string literal"):
			hint = "; a raw newline, tab or control character inside a string must be escaped (\\n)"
		case strings.HasSuffix(msg, "after object key"), strings.HasSuffix(msg, "after object key:value pair"):
			// A string where a colon or comma should follow: a missing
			// comma, or a quote inside a value that ended the value early.
			hint = `; check quotes and commas (a double quote inside a value must be written \")`
		}
	}
	line, col := position(doc, off)
	out := fmt.Sprintf("%s at line %d, column %d", what, line, col)
	if hint == "" {
		hint = "; check quotes and commas"
	}
	return out + hint
}

// redactSyntax drops the quoted character from "invalid character 'x' ..."
// messages; the remaining text ("looking for beginning of value") is generic.
func redactSyntax(msg string) string {
	const prefix = "invalid character "
	rest, ok := strings.CutPrefix(msg, prefix)
	if !ok {
		if strings.ContainsAny(msg, `'"`) {
			return "syntax error"
		}
		return msg
	}
	// quoteChar output never contains a space except for the space character
	// itself, written as ' '.
	if strings.HasPrefix(rest, "' '") {
		rest = rest[3:]
	} else if i := strings.IndexByte(rest, ' '); i >= 0 {
		rest = rest[i:]
	} else {
		rest = ""
	}
	return "unexpected character" + rest
}

// position converts a byte offset into a 1-based line and column (in runes).
func position(doc []byte, off int64) (line, col int) {
	if off > int64(len(doc)) {
		off = int64(len(doc))
	}
	if off < 0 {
		off = 0
	}
	before := doc[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	start := bytes.LastIndexByte(before, '\n') + 1
	col = utf8.RuneCount(before[start:]) + 1
	return line, col
}

// tokenKind names the JSON type of a top-level token without its content.
func tokenKind(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			return "an array"
		}
		return "an object"
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	default:
		return "something else"
	}
}

// credsTypeNames are the Google credentials types the app's Secret takes,
// sorted.
func credsTypeNames() []string {
	var names []string
	for _, c := range gcpauth.CredentialTypes() {
		names = append(names, c.Name)
	}
	slices.Sort(names)
	return names
}

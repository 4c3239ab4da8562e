package gcpauth

import (
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/oauth2"
)

// Sentinel errors, checkable with errors.Is. The errors that wrap them say
// what to change.
var (
	// ErrNoCredentials means no usable credentials were given.
	ErrNoCredentials = errors.New("no google credentials")
	// ErrNoOIDC means GitHub Actions did not provide an OIDC token: the job
	// probably lacks `permissions: id-token: write`.
	ErrNoOIDC = errors.New("no github oidc token")
	// ErrConfig means a setting (provider, service account, cluster, image
	// repository) is malformed.
	ErrConfig = errors.New("invalid google auth setting")
	// ErrInvalidCredentials means a credentials JSON is unusable.
	ErrInvalidCredentials = errors.New("invalid google credentials")
	// ErrExchange means Google's Security Token Service rejected the GitHub
	// token (wrong audience or provider, attribute mapping or condition).
	ErrExchange = errors.New("google token exchange rejected")
	// ErrPermission means Google refused the request for lack of a role or
	// permission (HTTP 403, or an attribute condition that rejects the job).
	ErrPermission = errors.New("google permission denied")
	// ErrNotFound means the service account or cluster does not exist (HTTP 404).
	ErrNotFound = errors.New("google resource not found")
	// ErrUnavailable means Google could not be reached or had an internal
	// error; retrying may help.
	ErrUnavailable = errors.New("google api unavailable")
	// ErrInvalidCA means a cluster CA certificate does not parse.
	ErrInvalidCA = errors.New("invalid cluster ca certificate")
)

// apiError is what we keep of a Google error response: status, a short code
// and a message, never the raw body.
type apiError struct {
	status  int
	code    string // STS "error" field, or API "status" (PERMISSION_DENIED)
	message string // STS "error_description", or API "message"
}

func (e apiError) String() string {
	var parts []string
	if e.status != 0 {
		parts = append(parts, "status "+strconv.Itoa(e.status))
	}
	if e.code != "" {
		parts = append(parts, e.code)
	}
	s := strings.Join(parts, " ")
	if e.message != "" {
		if s != "" {
			s += ": "
		}
		s += e.message
	}
	return s
}

// parseBody reads the two Google error shapes: OAuth ({"error":"x",
// "error_description":"y"}) and API ({"error":{"code":403,"message":..,
// "status":..}}).
func parseBody(status int, body []byte) apiError {
	e := apiError{status: status}
	var raw struct {
		Error            json.RawMessage `json:"error"`
		ErrorDescription string          `json:"error_description"`
	}
	if json.Unmarshal(body, &raw) != nil {
		return e
	}
	var code string
	if json.Unmarshal(raw.Error, &code) == nil {
		e.code, e.message = code, raw.ErrorDescription
		return e
	}
	var api struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
	}
	if json.Unmarshal(raw.Error, &api) == nil {
		e.code, e.message = api.Status, api.Message
		if e.status == 0 {
			e.status = api.Code
		}
	}
	return e
}

// statusPattern finds "status code 403: " in x/oauth2's plain-string errors.
var statusPattern = regexp.MustCompile(`status code (\d{3}): `)

// parseLibError extracts the innermost Google error from an x/oauth2 error.
// nested reports whether it sat inside an impersonation call's error, which
// means the failing call was the STS exchange that feeds impersonation.
func parseLibError(err error) (e apiError, nested, ok bool) {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		e = parseBody(status, re.Body)
		if e.code == "" {
			e.code, e.message = re.ErrorCode, re.ErrorDescription
		}
		return e, false, true
	}
	msg := err.Error()
	locs := statusPattern.FindAllStringSubmatchIndex(msg, -1)
	if len(locs) == 0 {
		return apiError{}, false, false
	}
	last := locs[len(locs)-1]
	status, _ := strconv.Atoi(msg[last[2]:last[3]])
	e = parseBody(status, []byte(msg[last[1]:]))
	nested = strings.Contains(msg[:last[0]], "unable to generate access token")
	return e, nested, true
}

// shorten keeps a message readable in a CI log.
func shorten(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// transportSummary describes a non-HTTP failure (DNS, TLS, timeout) without
// echoing response bodies.
func transportSummary(err error) string {
	return shorten(err.Error())
}

package server

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
)

// Credentials file states reported by /info.
const (
	CredsOK            = "ok"
	CredsMissing       = "missing"
	CredsUnreadable    = "unreadable"
	CredsInvalidJSON   = "invalid_json"
	CredsUnknownType   = "unrecognised_type"
	envSet, envMissing = "set", "missing"
)

// maxCredsSize bounds how much of the credentials file is read; real ones are a few kilobytes.
const maxCredsSize = 1 << 20

// Info is the body of /info: which settings are present, never their values.
type Info struct {
	// Logger is the logger name (LOGGER_NAME), which tells the canary from stable.
	Logger string `json:"logger"`
	// Env maps each expected variable name to "set" or "missing".
	Env map[string]string `json:"env"`
	// Creds describes the GCP credentials file.
	Creds CredsInfo `json:"creds"`
	// Draining reports whether a drain has started.
	Draining bool `json:"draining"`
	// ActiveCalls is the number of live calls.
	ActiveCalls int `json:"active_calls"`
}

// CredsInfo describes the GCP credentials file without its content.
type CredsInfo struct {
	// Path is where the file is expected.
	Path string `json:"path"`
	// Status is one of CredsOK, CredsMissing, CredsUnreadable, CredsInvalidJSON, CredsUnknownType.
	Status string `json:"status"`
	// Type is the credential type when recognised: service_account, external_account or authorized_user.
	Type string `json:"type,omitempty"`
}

// Info reports the server's settings without any secret value.
func (s *Server) Info() Info {
	env := make(map[string]string, len(s.cfg.ExpectedEnv))
	for _, name := range s.cfg.ExpectedEnv {
		env[name] = envMissing
		if s.getenv(name) != "" {
			env[name] = envSet
		}
	}
	return Info{
		Logger:      s.cfg.LoggerName,
		Env:         env,
		Creds:       InspectCreds(s.cfg.CredsPath),
		Draining:    s.Draining(),
		ActiveCalls: s.ActiveCalls(),
	}
}

// InspectCreds checks that the file at path is a GCP credentials JSON of a recognised type. It never
// returns any of the file's content except a recognised type name.
func InspectCreds(path string) CredsInfo {
	info := CredsInfo{Path: path}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		info.Status = CredsMissing
		return info
	}
	if err != nil {
		info.Status = CredsUnreadable
		return info
	}
	defer f.Close()
	var doc struct {
		Type string `json:"type"`
	}
	data, err := io.ReadAll(io.LimitReader(f, maxCredsSize+1))
	if err != nil || len(data) > maxCredsSize {
		info.Status = CredsUnreadable
		return info
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		info.Status = CredsInvalidJSON
		return info
	}
	switch doc.Type {
	case "service_account", "external_account", "authorized_user":
		info.Status, info.Type = CredsOK, doc.Type
	default:
		info.Status = CredsUnknownType
	}
	return info
}

func (s *Server) handleInfo(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Info())
}

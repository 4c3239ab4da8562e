package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// CheckHealth asks the server at baseURL for /pc/v1/healthcheck and returns nil when it answers 200. It backs
// the image's HEALTHCHECK (`chatbot healthcheck`).
func CheckHealth(ctx context.Context, client *http.Client, baseURL string) error {
	url := baseURL + "/pc/v1/healthcheck"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("build health request for %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w; is the chatbot running?", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: status %d, want 200; the chatbot is draining or unhealthy", url, resp.StatusCode)
	}
	return nil
}

package targets

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// ErrRegistryHost means an image repository is not on Artifact Registry.
var ErrRegistryHost = errors.New("not an artifact registry repository")

var artifactRegistryHost = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*-docker\.pkg\.dev$`)

// RegistryHost returns the registry host of an image repository such as
// asia-south1-docker.pkg.dev/PROJECT/REPOSITORY/IMAGE. It refuses hosts
// other than Artifact Registry's *-docker.pkg.dev, so an access token is
// never sent elsewhere, unless the host (host or host:port) is listed in
// allow — tests push to a loopback registry.
func RegistryHost(imageRepository string, allow ...string) (string, error) {
	what := fmt.Sprintf("find the registry of image repository %q", imageRepository)
	if strings.Contains(imageRepository, "://") {
		return "", fmt.Errorf("%s: an image repository has no scheme: %w; drop the %s prefix", what, ErrRegistryHost, imageRepository[:strings.Index(imageRepository, "://")+3])
	}
	host, path, _ := strings.Cut(imageRepository, "/")
	if slices.Contains(allow, host) {
		return host, nil
	}
	switch {
	case host == "" || path == "":
		return "", fmt.Errorf("%s: %w; expected REGION-docker.pkg.dev/PROJECT/REPOSITORY[/IMAGE]", what, ErrRegistryHost)
	case host == "gcr.io" || strings.HasSuffix(host, ".gcr.io"):
		return "", fmt.Errorf("%s: %s is Container Registry, which Google shut down: %w; use REGION-docker.pkg.dev/PROJECT/REPOSITORY", what, host, ErrRegistryHost)
	case !artifactRegistryHost.MatchString(host):
		return "", fmt.Errorf("%s: host %s is not an Artifact Registry docker host: %w; expected REGION-docker.pkg.dev/PROJECT/REPOSITORY[/IMAGE], e.g. asia-south1-docker.pkg.dev/desivocalprod01/ringg-registry-stage/dv-pipecat", what, host, ErrRegistryHost)
	case !strings.Contains(path, "/"):
		return "", fmt.Errorf("%s: the path needs a project and a repository: %w; expected %s/PROJECT/REPOSITORY[/IMAGE]", what, ErrRegistryHost, host)
	}
	return host, nil
}

module github.com/ringg/ringg-ci/tools/testcluster/controlplane

go 1.26.1

module github.com/ringg/ringg-ci/examples/chatbot

go 1.26.1

require (
	github.com/coder/websocket v1.8.14
	gotest.tools/v3 v3.5.2
)

require github.com/google/go-cmp v0.5.9 // indirect

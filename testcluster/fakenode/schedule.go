package fakenode

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Reasons the scheduler gives for a node a pod does not fit, as
// kube-scheduler words them.
const (
	reasonSelector = "node(s) didn't match Pod's node affinity/selector"
	reasonCPU      = "Insufficient cpu"
	reasonMemory   = "Insufficient memory"
)

// request is what a pod asks of its node: CPU in millicores, memory in
// bytes.
type request struct {
	cpu, memory int64
}

func (r request) add(o request) request { return request{r.cpu + o.cpu, r.memory + o.memory} }

// podRequest is the pod's effective request, as the scheduler counts it:
// the sum of its containers, or its largest init container if that is more.
func podRequest(pod *corev1.Pod) request {
	var r request
	for _, c := range pod.Spec.Containers {
		r.cpu += c.Resources.Requests.Cpu().MilliValue()
		r.memory += c.Resources.Requests.Memory().Value()
	}
	for _, c := range pod.Spec.InitContainers {
		r.cpu = max(r.cpu, c.Resources.Requests.Cpu().MilliValue())
		r.memory = max(r.memory, c.Resources.Requests.Memory().Value())
	}
	return r
}

// capacity is what a node offers pods.
func capacity(l corev1.ResourceList) request {
	return request{cpu: l.Cpu().MilliValue(), memory: l.Memory().Value()}
}

// placement is the scheduler's decision for one pod.
type placement struct {
	node    int    // index into the nodes; -1 when none fits
	message string // why none fits, in the scheduler's words
}

// place filters nodes as kube-scheduler's NodeAffinity and NodeResourcesFit
// plugins do (node selector, then requests against what is left) and picks
// the node with the most CPU left, the first on a tie.
func place(pod *corev1.Pod, nodes []node, free request, used []request) placement {
	want := podRequest(pod)
	reasons := map[string]int{}
	best := -1
	var bestFree int64
	for i, n := range nodes {
		if !matches(pod.Spec.NodeSelector, n.labels) {
			reasons[reasonSelector]++
			continue
		}
		left := request{free.cpu - used[i].cpu, free.memory - used[i].memory}
		fits := true
		if want.cpu > left.cpu {
			reasons[reasonCPU]++
			fits = false
		}
		if want.memory > left.memory {
			reasons[reasonMemory]++
			fits = false
		}
		if fits && (best < 0 || left.cpu > bestFree) {
			best, bestFree = i, left.cpu
		}
	}
	if best >= 0 {
		return placement{node: best}
	}
	return placement{node: -1, message: unschedulable(len(nodes), reasons)}
}

// unschedulable words a failed placement as kube-scheduler's FitError does:
// "0/2 nodes are available: 2 Insufficient cpu."
func unschedulable(nodes int, reasons map[string]int) string {
	parts := make([]string, 0, len(reasons))
	for r, n := range reasons {
		parts = append(parts, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(parts)
	msg := fmt.Sprintf("0/%d nodes are available", nodes)
	if len(parts) > 0 {
		msg += ": " + strings.Join(parts, ", ")
	}
	return msg + "."
}

func matches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

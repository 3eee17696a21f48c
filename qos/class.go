package qos

// Scheduling classes, the values of Invocation.Class.
const (
	Interactive uint8 = iota // synchronous callers
	Batch                    // background and asynchronous work
	NumClasses
)

var classNames = [NumClasses]string{"interactive", "batch"}

// ClassName returns the configuration name of class c.
func ClassName(c uint8) string {
	if c < NumClasses {
		return classNames[c]
	}
	return "unknown"
}

// ParseClass maps a class name (as in X-Sequoia-Priority) to a class.
func ParseClass(b []byte) (uint8, bool) {
	for i, n := range classNames {
		if string(b) == n {
			return uint8(i), true
		}
	}
	return 0, false
}

// QueueKind names one of the scheduler's two queues.
type QueueKind uint8

// The queues: continuations of running chains are always served before
// the first steps of new ones.
const (
	ChainRunning QueueKind = iota // CRQ: continuations of admitted chains
	Pending                       // PQ: first steps of new chains
	NumQueues
)

var queueNames = [NumQueues]string{"chain_running", "pending"}

func (k QueueKind) String() string {
	if k < NumQueues {
		return queueNames[k]
	}
	return "unknown"
}

package consumer

import "sync/atomic"

// frame is one outgoing text frame, held by the send queues it waits in and
// charged to the process budget once however many hold it. A frame built
// around another (a new_message around a history) writes the other's parts
// between its own head and tail and holds it, so the history is in memory
// once for every frame and connection that sends it.
type frame struct {
	kind  string   // the frame's type, for metrics
	parts [][]byte // written in order
	size  int64    // bytes written
	own   int64    // bytes charged for this frame (its head and tail)
	inner *frame   // shared parts, held while this frame is
	mem   *budget
	refs  atomic.Int32
}

// newFrame is a frame of b, charged to mem, held once by the caller.
func newFrame(mem *budget, kind string, b []byte) *frame {
	f := &frame{kind: kind, parts: [][]byte{b}, size: int64(len(b)), own: int64(len(b)), mem: mem}
	f.refs.Store(1)
	mem.charge(f.own)
	return f
}

// acquired is a frame of parts (size bytes) for which the caller has
// already acquired charged bytes from mem, held once by the caller.
func acquired(mem *budget, parts [][]byte, size, charged int64) *frame {
	f := &frame{parts: parts, size: size, own: charged, mem: mem}
	f.refs.Store(1)
	return f
}

// wrap is a frame of head, inner's parts and tail, held once by the caller;
// it holds inner until it is released.
func wrap(kind string, head []byte, inner *frame, tail []byte) *frame {
	inner.hold()
	parts := make([][]byte, 0, len(inner.parts)+2)
	parts = append(parts, head)
	parts = append(parts, inner.parts...)
	parts = append(parts, tail)
	own := int64(len(head) + len(tail))
	f := &frame{kind: kind, parts: parts, size: own + inner.size, own: own, inner: inner, mem: inner.mem}
	f.refs.Store(1)
	f.mem.charge(own)
	return f
}

func (f *frame) hold() { f.refs.Add(1) }

// release drops one hold; the last gives the bytes back to the budget.
func (f *frame) release() {
	if f.refs.Add(-1) != 0 {
		return
	}
	f.mem.release(f.own)
	if f.inner != nil {
		f.inner.release()
	}
}

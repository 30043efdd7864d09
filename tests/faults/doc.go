// Package faults runs the sidecar binary under load while what it depends
// on fails: its PostgreSQL server restarted and crashed, its Redis frozen
// and resumed, and the sidecar itself told to stop with SIGTERM. Each test
// has talkers sending in a closed loop (one message at a time, each with
// its own text) and listeners receiving, and checks what must hold however
// the timing falls: every message its sender saw come back is in the
// database, every send ends in exactly one of its new_message, an error
// frame or the connection's close, and the service comes back by itself.
//
// The tests own what they break: a private PostgreSQL cluster
// (testenv.NewCluster), a private redis-server (testenv.StartRedis), a
// sidecar process of their own; the shared servers are never stopped.
package faults

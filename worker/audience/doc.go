// Package audience streams the subscribers of a broadcast, one record at a
// time, from a position in the stream on.
//
// A stream audience is read in full, once, by every worker that holds a
// slot of it; each worker keeps only the records whose hash position falls
// in one of its slots. The package is built for that pattern: Next
// finds a record's id without decoding the rest of it, so a record another
// worker's slot holds costs a scan of its bytes and one hash, and
// Decode does the full parse only for the records the caller keeps. Memory
// is bounded by the longest allowed line, never by the audience size.
//
// Two sources are streams: "file", JSON Lines on a path every worker can
// read, and "synthetic", a deterministic generated audience for demos and
// load tests. A Cursor (from package sharding) marks where a stream
// resumes; it is cheap to resume either source anywhere.
//
// Two more are read by position range, so that a worker reads only the
// records of the slots it holds, not the whole audience; they live in
// their own packages, which bring their libraries: postgres (a table whose
// bigint column holds each id's position) and prepared (a JSON Lines
// audience rewritten as position-sorted segments, in a directory or
// S3-compatible storage). This package has what they share: the Spec with
// their fields and its validation, Record (SetLine, SetPosition),
// LineReader, and Location. Open refuses them (ErrRangeSource): the
// worker reads them by the ranges of the slots it holds (worker/rangestream.go).
//
// The package does not decide ownership, render messages or count
// anything; those are the worker's.
package audience

// Package prepared writes and reads prepared audiences: a JSON Lines
// audience rewritten once, by Import, as segments sorted by hash position
// with checkpoint files and an index, in a directory or S3-compatible
// object storage (minio-go), so that a worker reads only the segments and
// byte ranges of the slots it holds.
//
// Import sorts with bounded memory (runs spilled to disk and merged) and
// writes the index last. Open reads the index; Audience.Range reads one
// position range, starting from the checkpoint below it and stopping at
// the first record past it, and resumes from a Cursor (segment, offset).
// Records are read with the file source's line reader and id scan, so they
// are the file's records. A segment that does not match its checkpoints is
// an error, never a short read. Memory is the segment list, one segment's
// checkpoints and one line.
//
// The package does not decide ownership or hold secrets: StoreFor takes a
// function that reads a worker's secret by name.
package prepared

// Package postgres reads a broadcast's audience from a PostgreSQL table
// or view by hash-position range, so that a worker reads only the rows of
// the slots it holds.
//
// The table carries each subscriber's position (sharding.PositionColumn
// of its id) in a bigint column indexed on (position, id). Open checks the
// table against a spec (columns, types, indexes); Table.Range reads one
// range in (position, id) order, a page of rows per statement, each page a
// keyset read from the last row returned: one index range scan, no
// OFFSET, no snapshot or connection held between pages. A Range resumes
// after a Key. Rows become audience.Records built as file lines are, so
// Decode and the reasons for an invalid record are the same; a NULL or
// wrong position is an invalid record, counted by exactly one slot.
//
// Prepare makes an existing table ready without long locks (the column,
// its fill in batches, the indexes built concurrently); InstallTrigger
// fills the column of new rows in the database with herald_position, an
// XXH64 in PL/pgSQL. Memory is one page of rows, never the audience.
//
// The package does not decide ownership, render or count; it neither
// holds secrets (Dial takes the connection string a worker's secret holds)
// nor retries.
package postgres

// Package connect turns Herald's connection settings into configured
// clients and servers, in one place for every command: etcd clients with
// TLS, client certificates and user/password authentication; kafka-go
// transports and dialers with TLS and SASL (PLAIN, SCRAM-SHA-256,
// SCRAM-SHA-512); named secrets read from a directory or the environment;
// and, for the commands' HTTP servers, the header bound and refusal count
// of package headerlimit (which the reference endpoint, sink, uses without
// the etcd and Kafka clients this package brings).
//
// It reads files and builds configuration; it keeps no connection of its
// own and starts no goroutine. The SCRAM client is Herald's own, written to
// RFC 5802 and 7677 and to what Kafka brokers accept (no SASLprep, as
// Kafka's own clients).
package connect

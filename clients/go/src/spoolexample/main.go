// A small Spool client in Go: produces a job, works it (lease, heartbeat with a checkpoint, ack),
// reads it back, and shows a refused call's ErrorInfo reason. Prints one JSON line per step.
//
//	spoolexample ADDRESS QUEUE
//
// The environment, as for every Spool client: SPOOL_TOKEN (an API key, sent as
// "authorization: Bearer <key>"), SPOOL_TLS_CA (the PEM CA bundle that signed the server's
// certificate; setting it turns TLS on), SPOOL_TLS_CERT and SPOOL_TLS_KEY (a client certificate
// and its key, for mTLS).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io/ioutil"
	"os"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	spoolv1 "spoolapi/spool/v1"
)

func emit(step string, fields map[string]interface{}) {
	fields["step"] = step
	line, _ := json.Marshal(fields)
	fmt.Println(string(line))
}

// reason is the ErrorInfo reason a refused call carries ("" if none).
func reason(err error) string {
	for _, detail := range status.Convert(err).Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok {
			return info.Reason
		}
	}
	return ""
}

// transport is TLS (with a client certificate for mTLS) when SPOOL_TLS_* say so, else plaintext.
func transport() (grpc.DialOption, error) {
	caFile, certFile, keyFile := os.Getenv("SPOOL_TLS_CA"), os.Getenv("SPOOL_TLS_CERT"), os.Getenv("SPOOL_TLS_KEY")
	if caFile == "" && certFile == "" {
		// grpc-go 1.33 (Debian's) predates the insecure credentials package.
		return grpc.WithInsecure(), nil
	}
	config := &tls.Config{}
	if caFile != "" {
		pem, err := ioutil.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("SPOOL_TLS_CA: %v", err)
		}
		config.RootCAs = x509.NewCertPool()
		if !config.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("SPOOL_TLS_CA: no PEM certificate in %s", caFile)
		}
	}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("SPOOL_TLS_CERT, SPOOL_TLS_KEY: %v", err)
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(config)), nil
}

func run(address, queue string) error {
	security, err := transport()
	if err != nil {
		return err
	}
	conn, err := grpc.Dial(address, security)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := spoolv1.NewQueueServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if token := os.Getenv("SPOOL_TOKEN"); token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}

	enq, err := client.Enqueue(ctx, &spoolv1.EnqueueRequest{Queue: queue, Payload: []byte(`{"from":"go"}`)})
	if err != nil {
		return err
	}
	emit("enqueued", map[string]interface{}{"id": enq.Job.Id})

	lease, err := client.Lease(ctx, &spoolv1.LeaseRequest{
		Queues: []string{queue}, MaxJobs: 1, Wait: durationpb.New(5 * time.Second), WorkerId: "go-example",
	})
	if err != nil {
		return err
	}
	if len(lease.Jobs) == 0 {
		return fmt.Errorf("no job leased from %s", queue)
	}
	leased := lease.Jobs[0]
	emit("leased", map[string]interface{}{"id": leased.Job.Id, "payload": string(leased.Job.Payload)})

	beat := &spoolv1.HeartbeatRequest{JobId: leased.Job.Id, LeaseToken: leased.LeaseToken, Checkpoint: []byte(`{"step":1}`)}
	if _, err := client.Heartbeat(ctx, beat); err != nil {
		return err
	}
	ack := &spoolv1.AckRequest{JobId: leased.Job.Id, LeaseToken: leased.LeaseToken, Result: []byte(`{"by":"go"}`)}
	if _, err := client.Ack(ctx, ack); err != nil {
		return err
	}
	got, err := client.GetJob(ctx, &spoolv1.GetJobRequest{JobId: leased.Job.Id})
	if err != nil {
		return err
	}
	emit("acked", map[string]interface{}{"state": got.Job.State.String(), "attempts": len(got.Job.Attempts)})

	_, err = client.Ack(ctx, ack)
	emit("stale-ack", map[string]interface{}{"code": status.Code(err).String(), "reason": reason(err)})
	return nil
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: spoolexample ADDRESS QUEUE")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "spoolexample:", err)
		os.Exit(1)
	}
}

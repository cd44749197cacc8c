// Command sarama-baseline is the seed articles' design, written plainly: one Kafka
// consumer-group member built on Sarama that delivers each record of a partition with a
// blocking HTTP POST, retries until the endpoint answers 2xx, and marks the record only
// after that answer (auto-commit of marked offsets every second). One goroutine per
// claimed partition, so its concurrency is the number of partitions it owns.
//
// It exists only as the benchmark's baseline; it is not part of the product.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/IBM/sarama"
)

type handler struct {
	client *http.Client
	url    string
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *handler) ConsumeClaim(session sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			if !h.deliver(session.Context(), msg) {
				return nil // session ending: leave the record unmarked
			}
			session.MarkMessage(msg, "")
		case <-session.Context().Done():
			return nil
		}
	}
}

// deliver POSTs until a 2xx answer; false when the session ends first.
func (h *handler) deliver(ctx context.Context, msg *sarama.ConsumerMessage) bool {
	backoff := 100 * time.Millisecond
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(msg.Value))
		if err != nil {
			log.Fatalf("building request: %v", err)
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Kafka-Timestamp", strconv.FormatInt(msg.Timestamp.UnixMilli(), 10))
		resp, err := h.client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "comma-separated bootstrap brokers")
	group := flag.String("group", "sarama-baseline", "consumer group id")
	topic := flag.String("topic", "", "topic to consume")
	url := flag.String("url", "", "endpoint to POST each record to")
	flag.Parse()
	if *topic == "" || *url == "" {
		log.Fatal("-topic and -url are required")
	}

	config := sarama.NewConfig()
	config.Version = sarama.V3_6_0_0
	config.Consumer.Offsets.Initial = sarama.OffsetOldest
	config.Consumer.Offsets.AutoCommit.Enable = true
	config.Consumer.Offsets.AutoCommit.Interval = time.Second
	config.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRoundRobin()}

	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 256
	h := &handler{client: &http.Client{Transport: transport, Timeout: 10 * time.Second}, url: *url}

	cg, err := sarama.NewConsumerGroup(strings.Split(*brokers, ","), *group, config)
	if err != nil {
		log.Fatalf("joining group: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	for ctx.Err() == nil {
		if err := cg.Consume(ctx, []string{*topic}, h); err != nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) {
			log.Printf("consume: %v", err)
			time.Sleep(time.Second)
		}
	}
	if err := cg.Close(); err != nil { // commits marked offsets and leaves the group
		log.Fatalf("closing: %v", err)
	}
}

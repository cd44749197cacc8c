// Command benthos is Benthos v4 (MIT, the last release before it became Redpanda Connect)
// built from the Go module proxy with the components the benchmark uses: the kafka_franz
// input, the http_client output and the core processors. Its CLI is Benthos's own
// (service.RunCLI), so `benthos -c config.yaml` behaves as the released binary does.
package main

import (
	"context"

	"github.com/benthosdev/benthos/v4/public/service"

	_ "github.com/benthosdev/benthos/v4/public/components/io"
	_ "github.com/benthosdev/benthos/v4/public/components/kafka"
	_ "github.com/benthosdev/benthos/v4/public/components/pure"
)

func main() {
	service.RunCLI(context.Background())
}

package reyes

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go/middleware"
)

// DefaultEC2RequestTimeout bounds each attempt of an EC2 API call (one
// page of a Describe call), the response body included.
const DefaultEC2RequestTimeout = 30 * time.Second

// attemptsKey holds, in the context of one SDK operation, the counter of
// its attempts.
type attemptsKey struct{}

// whereKey holds, in the context of one SDK call, what the call is about
// when it is more precise than the client's own (a part of an S3 store,
// rather than its root object).
type whereKey struct{}

// withWhere names, for retry logs, what the calls made with ctx are about.
func withWhere(ctx context.Context, where string) context.Context {
	return context.WithValue(ctx, whereKey{}, where)
}

// logRetries returns the SDK stack option that logs a warning each time
// an attempt of an operation failed and the retryer will try again, naming
// the service, the operation, where (the region or the object) and the
// error: without it a hung or unreachable endpoint retried in silence for
// minutes.
func logRetries(log *slog.Logger, where string, retryer func() aws.Retryer) func(*middleware.Stack) error {
	return func(st *middleware.Stack) error {
		// Before the retry loop: one counter per operation.
		if err := st.Finalize.Insert(middleware.FinalizeMiddlewareFunc("reyesAttemptCounter",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				return next.HandleFinalize(context.WithValue(ctx, attemptsKey{}, new(atomic.Int32)), in)
			}), "Retry", middleware.Before); err != nil {
			return err
		}
		// Inside the retry loop: once per attempt.
		return st.Finalize.Insert(middleware.FinalizeMiddlewareFunc("reyesRetryLog",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleFinalize(ctx, in)
				n, _ := ctx.Value(attemptsKey{}).(*atomic.Int32)
				if err == nil || n == nil || ctx.Err() != nil {
					return out, md, err
				}
				attempt := int(n.Add(1))
				r := retryer()
				if r == nil || !r.IsErrorRetryable(err) || (r.MaxAttempts() > 0 && attempt >= r.MaxAttempts()) {
					return out, md, err
				}
				w := where
				if s, ok := ctx.Value(whereKey{}).(string); ok && s != "" {
					w = s
				}
				log.WarnContext(ctx, "request failed; retrying",
					"service", awsmiddleware.GetServiceID(ctx), "call", awsmiddleware.GetOperationName(ctx), "where", w,
					"attempt", attempt, "max_attempts", r.MaxAttempts(), "err", err.Error())
				return out, md, err
			}), "Retry", middleware.After)
	}
}

// EC2ClientOptions bound each attempt of an EC2 call by timeout (a hung
// endpoint used to hold the leader for 900 s) and log every retry.
func EC2ClientOptions(log *slog.Logger, timeout time.Duration) []func(*ec2.Options) {
	return []func(*ec2.Options){func(o *ec2.Options) {
		o.HTTPClient = awshttp.NewBuildableClient().WithTimeout(timeout)
		retryer := o.Retryer // sgsource's, set before these options
		o.APIOptions = append(o.APIOptions, logRetries(log, o.Region, func() aws.Retryer { return retryer }))
	}}
}

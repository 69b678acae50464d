#!/usr/bin/env bash
# Create or update the patient-management CloudFormation stack. It never deletes the stack.
#
#   infrastructure/deploy.sh [ParameterKey=Value ...]
#
# Targets LocalStack at http://localhost:4566 by default. Environment:
#   ENDPOINT_URL      emulator endpoint (default http://localhost:4566); ENDPOINT_URL= (set, empty)
#                     targets real AWS with your usual credentials, profile and region
#   STACK_NAME        default patient-management
#   TEMPLATE_FILE     default stack.yaml next to this script
#   TEMPLATE_BUCKET   S3 bucket to upload the template through (needed only above 51,200 bytes)
#   ENVIRONMENT_NAME  dev | test | production (the template's default: production)
#   CERTIFICATE_ARN   ACM certificate: HTTPS on the load balancer
#   IMAGE_PREFIX, IMAGE_TAG   all five images as $IMAGE_PREFIX/<service>:$IMAGE_TAG
#                     (defaults patient-management and latest), e.g. an ECR registry/namespace
#   API_GATEWAY_IMAGE, AUTH_SERVICE_IMAGE, PATIENT_SERVICE_IMAGE, BILLING_SERVICE_IMAGE,
#   ANALYTICS_SERVICE_IMAGE   one image URI each, overriding the two above
# Arguments are further parameter overrides, e.g. LogLevel=DEBUG DatabaseInstanceClass=db.t4g.small.
#
# Waiting is done by `aws cloudformation deploy` itself (CloudFormation waiters on the change set
# and on the stack), so there are no sleeps here. On failure the stack's failed events of this
# deployment are printed; on success its outputs and the gateway URL.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
stack_name="${STACK_NAME:-patient-management}"
template_file="${TEMPLATE_FILE:-$here/stack.yaml}"
endpoint_url="${ENDPOINT_URL-http://localhost:4566}"

if ! command -v aws >/dev/null 2>&1; then
  echo "deploy.sh: the aws CLI is missing: 'pip install awscli' (v1), or AWS CLI v2" \
    "(https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html)" >&2
  exit 127
fi

aws_cmd=(aws)
if [[ -n "$endpoint_url" ]]; then
  aws_cmd+=(--endpoint-url "$endpoint_url")
  # An emulator takes any credentials; supply dummy ones and a region only where none are set.
  export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
  export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
  export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-${AWS_REGION:-us-east-1}}"
  target="emulator at $endpoint_url"
else
  target="AWS"
fi

if ! "${aws_cmd[@]}" sts get-caller-identity >/dev/null; then
  if [[ -n "$endpoint_url" ]]; then
    echo "deploy.sh: no AWS API answers at $endpoint_url. Start LocalStack (it needs" \
      "LOCALSTACK_AUTH_TOKEN, see infrastructure/README.md), or set ENDPOINT_URL= for real AWS." >&2
  else
    echo "deploy.sh: no usable AWS credentials (aws configure, AWS_PROFILE or aws sso login)." >&2
  fi
  exit 1
fi

overrides=()
add_override() { # add_override <ParameterKey> <value>: only when the value is not empty
  if [[ -n "$2" ]]; then overrides+=("$1=$2"); fi
}
image_of() { # image_of <service> <explicit URI>
  if [[ -n "$2" ]]; then
    echo "$2"
  elif [[ -n "${IMAGE_PREFIX:-}${IMAGE_TAG:-}" ]]; then
    echo "${IMAGE_PREFIX:-patient-management}/$1:${IMAGE_TAG:-latest}"
  fi
}
add_override EnvironmentName "${ENVIRONMENT_NAME:-}"
add_override CertificateArn "${CERTIFICATE_ARN:-}"
add_override ApiGatewayImage "$(image_of api-gateway "${API_GATEWAY_IMAGE:-}")"
add_override AuthServiceImage "$(image_of auth-service "${AUTH_SERVICE_IMAGE:-}")"
add_override PatientServiceImage "$(image_of patient-service "${PATIENT_SERVICE_IMAGE:-}")"
add_override BillingServiceImage "$(image_of billing-service "${BILLING_SERVICE_IMAGE:-}")"
add_override AnalyticsServiceImage "$(image_of analytics-service "${ANALYTICS_SERVICE_IMAGE:-}")"
overrides+=("$@")

# A stack whose first creation failed (ROLLBACK_COMPLETE) cannot be updated, only deleted.
# Deleting is the operator's decision, never this script's.
status="$("${aws_cmd[@]}" cloudformation describe-stacks --stack-name "$stack_name" \
  --query 'Stacks[0].StackStatus' --output text 2>/dev/null || true)"
case "$status" in
  ROLLBACK_COMPLETE | ROLLBACK_FAILED | DELETE_FAILED | UPDATE_ROLLBACK_FAILED)
    echo "deploy.sh: stack $stack_name is $status, which CloudFormation cannot update." >&2
    echo "Read its events, then delete it yourself if you mean to:" \
      "aws cloudformation delete-stack --stack-name $stack_name" >&2
    exit 1
    ;;
  *) ;; # absent (created), or updatable
esac

# The newest event before this deployment: failures are reported from after it only.
last_event_id="$("${aws_cmd[@]}" cloudformation describe-stack-events --stack-name "$stack_name" \
  --max-items 1 --query 'StackEvents[0].EventId' --output text 2>/dev/null | head -n 1 || true)"

print_failures() {
  echo "Failed events of stack $stack_name in this deployment (newest first):" >&2
  "${aws_cmd[@]}" cloudformation describe-stack-events --stack-name "$stack_name" --max-items 500 \
    --query 'StackEvents[].[EventId, Timestamp, ResourceStatus, LogicalResourceId, ResourceType, ResourceStatusReason]' \
    --output text 2>/dev/null |
    awk -F '\t' -v stop="$last_event_id" '
      $1 == stop { exit }
      $3 ~ /FAILED$/ || $3 == "ROLLBACK_IN_PROGRESS" || $3 == "UPDATE_ROLLBACK_IN_PROGRESS" {
        printf "  %s %s %s (%s)\n", $2, $3, $4, $5; found = 1
        if ($6 != "" && $6 != "None") printf "      %s\n", $6
      }
      END { if (!found) print "  (none recorded; the message above is the cause)" }' >&2 || true
}

deploy_args=(
  cloudformation deploy
  --stack-name "$stack_name"
  --template-file "$template_file"
  --capabilities CAPABILITY_IAM
  --no-fail-on-empty-changeset
  --tags Project=patient-management
)
if [[ ${#overrides[@]} -gt 0 ]]; then deploy_args+=(--parameter-overrides "${overrides[@]}"); fi
if [[ -n "${TEMPLATE_BUCKET:-}" ]]; then deploy_args+=(--s3-bucket "$TEMPLATE_BUCKET"); fi

echo "Deploying stack $stack_name to $target${status:+ (currently $status)}"
errors="$(mktemp)"
trap 'rm -f "$errors"' EXIT
if ! "${aws_cmd[@]}" "${deploy_args[@]}" 2>"$errors"; then
  cat "$errors" >&2
  # AWS reports "nothing to change" through the change set, which --no-fail-on-empty-changeset
  # accepts; some emulators refuse the change set with this message instead.
  if ! grep -q "No updates are to be performed" "$errors"; then
    print_failures
    exit 1
  fi
  echo "No changes: stack $stack_name is up to date."
fi

outputs="$("${aws_cmd[@]}" cloudformation describe-stacks --stack-name "$stack_name" \
  --query 'Stacks[0].Outputs[].[OutputKey, OutputValue]' --output text)"
echo "Outputs of $stack_name:"
awk -F '\t' 'NF == 2 { printf "  %-26s %s\n", $1, $2 }' <<<"$outputs"
gateway_url="$(awk -F '\t' '$1 == "GatewayUrl" { print $2 }' <<<"$outputs")"
echo "Gateway URL: ${gateway_url:-(none: the stack reports no GatewayUrl output)}"

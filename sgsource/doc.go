// Package sgsource says where an inventory of security groups comes from.
//
// An [inventory.Inventory] is AWS-shaped: per region, the VPCs, security
// groups, network interfaces and managed prefix lists, as the EC2 API
// describes them, with addresses already parsed into [net/netip] types. It is
// the input of ruleset.Build.
//
// Two sources produce it: [ReadDir] reads a directory of AWS CLI JSON output
// (one subdirectory per region, the files exactly as `aws ec2 describe-*`
// prints them), which makes every test and the quickstart work offline; and
// [EC2] queries the live API with aws-sdk-go-v2. Both return the same
// Inventory for the same estate: ReadDir decodes each file (with
// encoding/json/v2) into the SDK's output type of its call, such as
// ec2.DescribeSecurityGroupsOutput, whose field names are the CLI's, and
// both sources convert the SDK's types with one set of functions. A value
// they cannot use is a [*FieldError] naming the file, the field and its
// JSON pointer.
//
// This package does not decide policy: excluded groups, membership resolution
// and validation of the rules belong to package ruleset.
package sgsource

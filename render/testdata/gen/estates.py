#!/usr/bin/env python3
"""Writes the offline inventories of the issue-14 golden cases (as the AWS
CLI prints them) under render/testdata/inventories: run from render/."""
import json, os, shutil

def vpc(vid, owner, v4, v6=None):
    d = {"OwnerId": owner, "CidrBlock": v4, "VpcId": vid, "State": "available", "IsDefault": False,
         "CidrBlockAssociationSet": [{"AssociationId": "a-" + vid, "CidrBlock": v4, "CidrBlockState": {"State": "associated"}}]}
    if v6:
        d["Ipv6CidrBlockAssociationSet"] = [{"AssociationId": "a6-" + vid, "Ipv6CidrBlock": v6, "Ipv6CidrBlockState": {"State": "associated"}}]
    return d

def perm(proto, frm, to, groups=(), cidrs=()):
    p = {"IpProtocol": proto, "IpRanges": [{"CidrIp": c} for c in cidrs if ":" not in c],
         "Ipv6Ranges": [{"CidrIpv6": c} for c in cidrs if ":" in c], "PrefixListIds": [],
         "UserIdGroupPairs": [dict(g) for g in groups]}
    if frm is not None:
        p["FromPort"], p["ToPort"] = frm, to
    return p

def sg(gid, name, owner, vid, ingress):
    return {"Description": name, "GroupName": name, "GroupId": gid, "OwnerId": owner, "VpcId": vid,
            "IpPermissions": ingress, "IpPermissionsEgress": []}

def eni(nid, owner, vid, typ, v4=(), v6=(), p4=(), p6=(), groups=(), desc=""):
    d = {"Description": desc, "Groups": [{"GroupId": g, "GroupName": "n"} for g in groups],
         "InterfaceType": typ, "NetworkInterfaceId": nid, "OwnerId": owner, "VpcId": vid,
         "Status": "in-use", "SubnetId": "subnet-00000000000000001",
         "PrivateIpAddresses": [{"Primary": i == 0, "PrivateIpAddress": a} for i, a in enumerate(v4)],
         "Ipv6Addresses": [{"Ipv6Address": a} for a in v6]}
    if v4:
        d["PrivateIpAddress"] = v4[0]
    if p4:
        d["Ipv4Prefixes"] = [{"Ipv4Prefix": p} for p in p4]
    if p6:
        d["Ipv6Prefixes"] = [{"Ipv6Prefix": p} for p in p6]
    return d

def write(root, rel, doc):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=4)
        f.write("\n")

def region(root, rel, vpcs, sgs, enis, extra=None):
    write(root, rel + "/vpcs.json", {"Vpcs": vpcs})
    write(root, rel + "/security-groups.json", {"SecurityGroups": sgs})
    write(root, rel + "/network-interfaces.json", {"NetworkInterfaces": enis})
    for name, doc in (extra or {}).items():
        write(root, rel + "/" + name, doc)

A = "111111111111"
PEER = {"VpcPeeringConnectionId": "pcx-000000000000000d1", "PeeringStatus": "active"}

def delegated():
    root = "testdata/inventories/delegated"
    shutil.rmtree(root, ignore_errors=True)
    V_DB, V_K8S = "vpc-000000000000000d1", "vpc-000000000000000d2"
    nodes, pods, db = "sg-000000000000000d1", "sg-000000000000000d2", "sg-000000000000000d3"
    ref = lambda g: dict(GroupId=g, UserId=A, VpcId=V_K8S, **PEER)
    region(root, "us-east-1",
           [vpc(V_DB, A, "10.21.0.0/16", "2600:1f18:21::/56"), vpc(V_K8S, A, "10.20.0.0/16", "2600:1f18:20::/56")],
           [sg(nodes, "nodes", A, V_K8S, []), sg(pods, "pods", A, V_K8S, []),
            sg(db, "db", A, V_DB, [perm("tcp", 5432, 5432, [ref(nodes)]), perm("tcp", 6379, 6379, [ref(pods)])])],
           [eni("eni-000000000000000d1", A, V_K8S, "interface", ["10.20.1.10"], ["2600:1f18:20:1::10"],
                ["10.20.1.16/28", "10.20.1.48/28"], ["2600:1f18:20:1:a::/80"], [nodes], "EKS node"),
            eni("eni-000000000000000d2", A, V_K8S, "trunk", ["10.20.1.11"], groups=[nodes], desc="EKS trunk"),
            eni("eni-000000000000000d3", A, V_K8S, "branch", ["10.20.1.70"], groups=[pods], desc="aws-k8s-branch-eni"),
            eni("eni-000000000000000d4", A, V_DB, "interface", ["10.21.2.5"], ["2600:1f18:21:2::5"], groups=[db], desc="db"),
            eni("eni-000000000000000d5", A, V_K8S, "lambda", ["10.20.3.7"], groups=[pods], desc="AWS Lambda VPC ENI"),
            eni("eni-000000000000000d6", A, V_K8S, "vpc_endpoint", ["10.20.3.8"], groups=[nodes], desc="VPC Endpoint Interface")])

if __name__ == "__main__":
    delegated()

N, P, Q, U = "222222222222", "333333333333", "444444444444", "999999999999"

def tgw_files(attachments):
    tg = {"TransitGateways": [{"TransitGatewayId": "tgw-000000000000000e1", "State": "available", "OwnerId": N,
                               "Options": {"SecurityGroupReferencingSupport": "enable", "DnsSupport": "enable"}}]}
    att = {"TransitGatewayVpcAttachments": [
        {"TransitGatewayAttachmentId": "tgw-attach-00000000000000" + suffix, "TransitGatewayId": "tgw-000000000000000e1",
         "VpcId": v, "VpcOwnerId": N, "State": "available", "SubnetIds": ["subnet-00000000000000001"],
         "Options": {"SecurityGroupReferencingSupport": ref, "DnsSupport": "enable", "Ipv6Support": "disable", "ApplianceModeSupport": "disable"}}
        for suffix, v, ref in attachments]}
    return {"transit-gateways.json": tg, "transit-gateway-vpc-attachments.json": att}

def accounts(name, with_tgw):
    root = "testdata/inventories/" + name
    shutil.rmtree(root, ignore_errors=True)
    SHARED, SVC, LEGACY, PEER_V = "vpc-000000000000000e1", "vpc-000000000000000e2", "vpc-000000000000000e3", "vpc-000000000000000e4"
    db, app, legacy, base, old, nlb, gone, peered = ("sg-000000000000000e%d" % i for i in (1, 2, 4, 5, 6, 7, 8, 3))
    unread = "sg-000000000000000e9"
    rules = [
        perm("tcp", 5432, 5432, [dict(GroupId=app, UserId=P)]),
        perm("tcp", 6379, 6379, [dict(GroupId=legacy, UserId=N)]),
        perm("tcp", 9000, 9000, [dict(GroupId=unread, UserId=U)]),
        perm("tcp", 443, 443, [dict(GroupId=base, UserId=N)]),
        perm("tcp", 8443, 8443, [dict(GroupId=old, UserId=N)]),
        perm("tcp", 3000, 3000, [dict(GroupId=nlb, UserId=N)]),
        perm("tcp", 22, 22, [dict(GroupId=gone, UserId=N, VpcId=SVC, VpcPeeringConnectionId="pcx-000000000000000e2", PeeringStatus="deleted")]),
        perm("tcp", 8080, 8080, [dict(GroupId=peered, UserId=Q, VpcId=PEER_V, VpcPeeringConnectionId="pcx-000000000000000e1", PeeringStatus="active")]),
    ]
    extra_n = {"security-group-vpc-associations.json": {"SecurityGroupVpcAssociations": [
        {"GroupId": base, "GroupOwnerId": N, "VpcId": LEGACY, "VpcOwnerId": N, "State": "associated"},
        {"GroupId": old, "GroupOwnerId": N, "VpcId": LEGACY, "VpcOwnerId": N, "State": "disassociated"}]}}
    if with_tgw:
        extra_n.update(tgw_files([("e1", SHARED, "enable"), ("e2", SVC, "enable"), ("e3", LEGACY, "disable")]))
    participant_eni = eni("eni-000000000000000e2", P, SHARED, "interface", ["10.30.1.10"], p4=["10.30.1.32/28"], groups=[app], desc="participant app")
    region(root, N + "/us-east-1",
           [vpc(SHARED, N, "10.30.0.0/16", "2600:1f18:30::/56"), vpc(SVC, N, "10.31.0.0/16"), vpc(LEGACY, N, "10.32.0.0/16")],
           [sg(db, "db", N, SVC, rules), sg(legacy, "legacy", N, LEGACY, []), sg(base, "baseline", N, SHARED, []),
            sg(old, "old", N, SHARED, []), sg(nlb, "front-nlb", N, SHARED, []), sg(gone, "gone", N, SVC, [])],
           [eni("eni-000000000000000e1", N, SVC, "interface", ["10.31.1.5"], groups=[db], desc="db"),
            participant_eni,
            eni("eni-000000000000000e4", N, LEGACY, "interface", ["10.32.0.10"], groups=[legacy]),
            eni("eni-000000000000000e5", N, SHARED, "interface", ["10.30.3.20"], groups=[base]),
            eni("eni-000000000000000f5", N, LEGACY, "interface", ["10.32.0.20"], groups=[base]),
            eni("eni-000000000000000e6", N, SHARED, "interface", ["10.30.3.30"], groups=[old]),
            eni("eni-000000000000000f6", N, LEGACY, "interface", ["10.32.0.30"], groups=[old]),
            eni("eni-000000000000000e7", N, SHARED, "network_load_balancer", ["10.30.2.7"], groups=[nlb], desc="ELB net/front/0123456789abcdef"),
            eni("eni-000000000000000e8", N, SVC, "interface", ["10.31.2.8"], groups=[gone])],
           extra_n)
    region(root, N + "/eu-west-1", [vpc("vpc-000000000000000ea", N, "10.40.0.0/16")], [], [])
    # The participant sees the shared VPC (an older view of its CIDRs: the
    # owner's wins), its own group and interfaces; no transit gateways.
    region(root, P + "/us-east-1", [vpc(SHARED, N, "10.30.0.0/16")],
           [sg(app, "app", P, SHARED, [])],
           [participant_eni, eni("eni-000000000000000eb", P, SHARED, "branch", ["10.30.1.50"], groups=[app], desc="aws-k8s-branch-eni")])
    region(root, Q + "/us-east-1", [vpc(PEER_V, Q, "10.33.0.0/16")], [sg(peered, "partner", Q, PEER_V, [])],
           [eni("eni-000000000000000e3", Q, PEER_V, "interface", ["10.33.0.10"], groups=[peered])])

if __name__ == "__main__":
    accounts("accounts", True)
    accounts("accounts-no-tgw", False)

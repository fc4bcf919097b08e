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

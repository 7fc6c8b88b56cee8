Feature: Local API and CLI
  The CLI talks to the local node over a REST API that listens on loopback
  only and needs the node's token. Every command exits 0 when it succeeds,
  1 when it is refused or fails and 2 on a usage error; a failure is one
  clear line on stderr, and -o json prints JSON.

  Background:
    Given the node alice is running

  Scenario: The API refuses to listen on a reachable address
    Given dave has a home
    When dave runs `dms run --listen /ip4/127.0.0.1/tcp/0 --api-listen 0.0.0.0:0`
    Then it is refused with "not a loopback address"

  Scenario: A request without the node's token is refused with 401
    When a program calls GET /api/v1/peers on alice's API without a token
    Then the API answers 401 with the code "unauthorized"

  Scenario: A request with a wrong token is refused with 401
    When a program calls GET /api/v1/peers on alice's API with the token "not-the-token-of-this-node"
    Then the API answers 401 with the code "unauthorized"

  Scenario: The health check needs no token
    When a program calls GET /api/v1/health on alice's API without a token
    Then the API answers 200

  Scenario: A request with the node's token is served
    When a program calls GET /api/v1/node on alice's API with the node's token
    Then the API answers 200
    And the answer contains "<alice.peer>"

  Scenario: An invocation the node refuses is answered 403 with its typed error
    When a program invokes "/dms/node/peers/list" on alice through alice's API, signed by a key alice does not trust
    Then the API answers 403 with the code "denied"

  Scenario Outline: Exit codes say success, refusal or usage error
    When alice runs `dms <command>`
    Then the command exits with <code>

    Examples:
      | command                         | code |
      | peers self                      | 0    |
      | config get no.such.key          | 1    |
      | onboard --ram 100TiB            | 1    |
      | invoke /public/hello --to nope  | 2    |
      | onboard --cpu lots              | 2    |
      | no-such-command                 | 2    |

  Scenario: A usage error is one line on stderr and nothing on stdout
    When alice runs `dms onboard --cpu lots`
    Then it is a usage error saying "--cpu: \"lots\" is not a CPU amount"

  Scenario Outline: Commands print JSON with -o json
    When alice runs `dms -o json <command>`
    Then the command succeeds
    And the output is JSON

    Examples:
      | command     |
      | version     |
      | peers self  |
      | peers list  |
      | resources   |
      | cap list    |
      | key list    |
      | deployments |

  Scenario: Without a running node, a command that needs one says how to start it
    Given dave has a home
    When dave runs `dms peers list`
    Then it is refused with "no running node"
    And the error says "dms --home"

  Scenario: The configuration is read and changed with dms config
    Given dave has a home
    When dave runs `dms config set p2p.mdns true`
    Then the command succeeds
    When dave runs `dms config get p2p.mdns`
    Then the output contains "true"
    When dave runs `dms config set p2p.no_such_key 1`
    Then the command fails with exit code 1

  Scenario: dms version names the build
    When alice runs `dms version`
    Then the command succeeds
    And the output contains "dms "

  Scenario: A mistyped command gets the suggestions on one readable line
    When alice runs `dms deplo`
    Then it is a usage error saying "unknown command \"deplo\" for \"dms\"; did you mean \"deploy\""

  Scenario Outline: A command group refuses an unknown subcommand
    When alice runs `dms <command>`
    Then it is a usage error saying "<error>"

    Examples:
      | command           | error                                                                  |
      | deployment frob   | unknown command \"frob\" for \"dms deployment\"                        |
      | deployment statu  | unknown command \"statu\" for \"dms deployment\"; did you mean \"status\"? |
      | key lst           | unknown command \"lst\" for \"dms key\"                                |

  Scenario: An unknown deployment is not found, said once
    When alice runs `dms deployment status no-such-deployment`
    Then it is refused with "deployment no-such-deployment: not found"
    And the error says "not found" once

  Scenario: A wrong passphrase names where it was read from
    When alice runs `dms key check user` with the passphrase "not-the-passphrase"
    Then it is refused with "wrong passphrase for key user (read from $DMS_PASSPHRASE)"

  Scenario: A Docker Compose file given to dms deploy points at dms translate
    Given the file "compose.yaml":
      """
      services:
        web:
          image: nginx
      """
    When alice runs `dms deploy -f compose.yaml`
    Then the command fails with exit code 1
    And the error says "compose.yaml looks like a Docker Compose file, not an ensemble: convert it with `dms translate --from compose compose.yaml"

  Scenario: A duration too large to hold is said to be too large
    Given the file "forever.yaml":
      """
      version: v1
      timeouts:
        queue: 9999999h
      allocations:
        a: {executor: wasm, execution: {module: workload.wasm}}
      """
    When alice runs `dms validate -f forever.yaml`
    Then the command fails with exit code 1
    And the output contains "timeouts.queue: \"9999999h\" is too large"

  Scenario: Ctrl-C while following services exits 130 and leaves them running
    Given bob offers 1 CPU to alice's deployments
    And the file "svc.yaml":
      """
      version: v1
      allocations:
        svc:
          type: service
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=serving, sleep=10m]}
      """
    When alice starts `dms deploy -f svc.yaml --follow`
    Then within 60 seconds its error output says "all services run; Ctrl-C stops following and leaves them running (dms deployment shutdown"
    When it is sent SIGINT
    Then it exits with 130 within 10 seconds
    And its error output says "interrupted by SIGINT (Ctrl-C): deployment <deployment> goes on; follow it again with dms deployment logs -f <deployment>"
    When alice runs `dms deployment status <deployment>`
    Then the command succeeds
    And the output contains "running"
    And the output contains "PORTS"

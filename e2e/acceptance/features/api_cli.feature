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

  @logs
  Scenario: deployment logs shows the tail, one stream, and timestamps
    Given bob offers 1 CPU to alice's deployments
    And alice has deployed the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=line-1, print=line-2, print=line-3, eprint=oops, print=line-4]}
      """
    And the deployment completes within 60 seconds
    When alice runs `dms deployment logs <deployment> --tail 2 --stderr`
    Then the command succeeds
    And the output is empty
    And the error says "oops"
    When alice runs `dms deployment logs <deployment> --tail 2`
    Then the output contains "line-4"
    And the output does not contain "line-2"
    When alice runs `dms deployment logs <deployment> --timestamps`
    Then the output has 4 lines
    And every line of the output starts with a timestamp
    When alice runs `dms deployment logs <deployment> --since 1h`
    Then the output contains "line-1"
    When alice runs `dms deployment logs <deployment> --since yesterday`
    Then it is refused with "want a duration (10m, 2h)"

  @docker @exec
  Scenario: deployment exec runs a command in a running container, with stdin, and exits with its code
    Given bob offers 1 CPU to alice's deployments
    And bob offers the docker executor
    And alice has deployed, without waiting, the ensemble:
      """
      version: v1
      allocations:
        web:
          executor: docker
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {image: "<workload-image>", cmd: [print=ready, sleep=10m]}
      """
    And within 60 seconds the deployment is "running" with the allocation "web" "running"
    When alice runs `dms deployment exec <deployment> web -- /workload print=inside exit=3`
    Then the command fails with exit code 3
    And the output contains "inside"
    When alice runs `dms deployment exec -i <deployment> web -- /workload cat=/dev/stdin` with the input "hello through stdin\n"
    Then the command succeeds
    And the output contains "hello through stdin"
    When alice runs `dms deployment exec -it <deployment> web -- /workload print=in-a-tty exit=4` on a terminal
    Then the command fails with exit code 4
    And the output contains "in-a-tty"
    When alice runs `dms deployment exec <deployment> nope -- /workload`
    Then it is refused with "has no allocation nope"

  @exec
  Scenario: deployment exec refuses an allocation whose executor cannot exec
    Given bob offers 1 CPU to alice's deployments
    And alice has deployed, without waiting, the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=ready, sleep=10m]}
      """
    And within 60 seconds the deployment is "running" with the allocation "job" "running"
    When alice runs `dms deployment exec <deployment> job -- sh`
    Then it is refused with "exec is not supported by executor wasm"

  @logs
  Scenario: deployment logs -f starts from the last 10 lines, not the whole history
    Given bob offers 1 CPU to alice's deployments
    And alice has deployed the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [tick=14x10ms]}
      """
    And the deployment completes within 60 seconds
    When alice runs `dms deployment logs <deployment> -f`
    Then the command succeeds
    And the output has 10 lines
    And the output contains "tick 5"
    And the output does not contain "tick 4"
    When alice runs `dms deployment logs <deployment> -f --tail 0`
    Then the output has 14 lines

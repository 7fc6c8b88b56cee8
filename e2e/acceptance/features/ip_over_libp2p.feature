@featureenv @docker
Feature: IP over libp2p
  The allocations of a deployment share a private subnet carried over
  libp2p: each gets an IP address, and names under .internal resolve to
  them, whichever providers they run on.

  Every node runs in its own container of the feature environment, the
  regions 20 ms apart; the operator (ap-1) orchestrates, eu-1, eu-2 and
  us-1 provide. The providers run their docker allocations on this
  machine's Docker engine: each container gets an interface dms0 in its
  own network namespace, read and written by its provider's dms, which
  carries the packets to the other providers over libp2p. Commands run in
  an allocation with `dms deployment exec`, from the operator; the
  workloads are busybox (httpd, nc, nslookup).

  Background:
    Given a feature environment of 4 nodes in the regions ap:1, eu:2, us:1 with 20 ms between regions, whose nodes run docker containers
    And every node of the environment but the operator offers 1 CPU

  Scenario: Two allocations on different providers reach each other by IP
    Given the operator has deployed the ensemble:
      """
      version: v1
      network: {subnet: true}
      allocations:
        server:
          type: service
          executor: docker
          resources: {cpu: 0.2, ram: 32MiB}
          execution:
            image: <busybox>
            cmd: [sh, -c, "mkdir -p /tmp/www && echo hello-from-the-server > /tmp/www/index.html && exec httpd -f -p 7000 -h /tmp/www"]
        client:
          type: service
          executor: docker
          resources: {cpu: 0.2, ram: 32MiB}
          execution: {image: <busybox>, cmd: [sleep, "3600"]}
      nodes:
        back: {allocations: [server], peer: <peer of eu-1>}
        front: {allocations: [client], peer: <peer of us-1>}
      """
    When "client" runs `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 <address of server> 7000`
    Then its output contains "hello-from-the-server"

  Scenario: An allocation reaches another by its .internal name
    Given the operator has deployed the ensemble:
      """
      version: v1
      network: {subnet: true}
      allocations:
        db:
          type: service
          executor: docker
          resources: {cpu: 0.2, ram: 32MiB}
          execution:
            image: <busybox>
            cmd: [sh, -c, "mkdir -p /tmp/www && echo hello-from-db > /tmp/www/index.html && exec httpd -f -p 7000 -h /tmp/www"]
        web:
          type: service
          executor: docker
          resources: {cpu: 0.2, ram: 32MiB}
          execution: {image: <busybox>, cmd: [sleep, "3600"]}
      nodes:
        data: {allocations: [db], peer: <peer of eu-1>}
        front: {allocations: [web], peer: <peer of us-1>}
      """
    When "web" resolves "db.internal"
    Then it gets the subnet address of "db"
    When "web" runs `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 db.internal 7000`
    Then its output contains "hello-from-db"

  Scenario: Deployments are isolated from each other
    Given the operator has deployed the ensemble:
      """
      version: v1
      network: {subnet: true}
      allocations:
        server:
          type: service
          executor: docker
          resources: {cpu: 0.2, ram: 32MiB}
          execution:
            image: <busybox>
            cmd: [sh, -c, "mkdir -p /tmp/www && echo hello-from-the-first > /tmp/www/index.html && exec httpd -f -p 7000 -h /tmp/www"]
        client:
          type: service
          executor: docker
          resources: {cpu: 0.2, ram: 32MiB}
          execution: {image: <busybox>, cmd: [sleep, "3600"]}
      nodes:
        back: {allocations: [server], peer: <peer of eu-1>}
        front: {allocations: [client], peer: <peer of us-1>}
      """
    And the operator has deployed the ensemble:
      """
      version: v1
      network: {subnet: true}
      allocations:
        server:
          type: service
          executor: docker
          resources: {cpu: 0.2, ram: 32MiB}
          execution:
            image: <busybox>
            cmd: [sh, -c, "mkdir -p /tmp/www && echo hello-from-the-second > /tmp/www/index.html && exec httpd -f -p 7000 -h /tmp/www"]
      nodes:
        back: {allocations: [server], peer: <peer of eu-1>}
      """
    # Each deployment has its own block; a packet the client's interface
    # carries to the second deployment's server meets no route in the
    # first deployment's table.
    When a genuine packet is written into "client"'s interface of the first deployment, to "server" of the second deployment
    Then within 10 seconds the providers count a packet dropped as "no-route"
    And "server"'s interface of the second deployment has received no packet
    When "client" of the first deployment runs `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 <address of server of the first deployment> 7000`
    Then its output contains "hello-from-the-first"

  Scenario: The subnet is removed when the deployment ends
    Given the operator has deployed the ensemble:
      """
      version: v1
      network: {subnet: true}
      allocations:
        a:
          type: service
          executor: docker
          resources: {cpu: 0.2, ram: 32MiB}
          execution: {image: <busybox>, cmd: [sleep, "3600"]}
        b:
          type: service
          executor: docker
          resources: {cpu: 0.2, ram: 32MiB}
          execution: {image: <busybox>, cmd: [sleep, "3600"]}
      """
    When the operator shuts the deployment down
    Then within 20 seconds no provider keeps a container, a TUN interface, a route or a routing table of it

  Scenario: A published port is reachable from the provider's host
    Given the operator has deployed the ensemble:
      """
      version: v1
      network: {subnet: true}
      allocations:
        site:
          type: service
          executor: docker
          resources: {cpu: 0.2, ram: 32MiB}
          execution:
            image: <busybox>
            cmd: [sh, -c, "mkdir -p /tmp/www && echo hello-from-the-site > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]
          ports: [{port: 8080, public: <free-port>}]
      """
    When a program on the provider's host connects to the published port
    Then its output contains "hello-from-the-site"

  Scenario: A packet with a spoofed source injected on a provider is dropped and counted
    Given the operator has deployed the ensemble:
      """
      version: v1
      network: {subnet: true}
      allocations:
        sink:
          type: service
          executor: docker
          resources: {cpu: 0.2, ram: 32MiB}
          execution: {image: <busybox>, cmd: [sleep, "3600"]}
        source:
          type: service
          executor: docker
          resources: {cpu: 0.2, ram: 32MiB}
          execution: {image: <busybox>, cmd: [sleep, "3600"]}
      nodes:
        back: {allocations: [sink], peer: <peer of eu-1>}
        front: {allocations: [source], peer: <peer of us-1>}
      """
    When a packet with a spoofed source is written into "source"'s interface, to "sink"
    Then within 10 seconds the providers count a packet dropped as "spoofed"
    And "sink"'s interface has received no packet
    When a genuine packet is written into "source"'s interface, to "sink"
    Then within 10 seconds "sink"'s interface has received a packet

  # The server's container runs on while its provider is down: the same
  # container (its hostname) answers once the provider is back.
  Scenario: A provider killed and started again gives its running containers their interface again
    Given the operator has deployed the ensemble:
      """
      version: v1
      network: {subnet: true}
      allocations:
        server:
          type: service
          executor: docker
          resources: {cpu: 0.2, ram: 32MiB}
          execution:
            image: <busybox>
            cmd: [sh, -c, "mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 7000 -h /tmp/www"]
        client:
          type: service
          executor: docker
          resources: {cpu: 0.2, ram: 32MiB}
          execution: {image: <busybox>, cmd: [sleep, "3600"]}
      nodes:
        back: {allocations: [server], peer: <peer of eu-1>}
        front: {allocations: [client], peer: <peer of us-1>}
      """
    And "client" runs `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 server.internal 7000 | tail -n 1`
    When the provider running "server" is killed and started again
    Then within 20 seconds "client" runs `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 server.internal 7000 | tail -n 1` with an output the same as the last

  Scenario: After a redeploy the name resolves to the new place
    Given the operator has deployed the ensemble:
      """
      version: v1
      network: {subnet: true}
      allocations:
        db:
          type: service
          executor: docker
          resources: {cpu: 0.2, ram: 32MiB}
          execution:
            image: <busybox>
            cmd: [sh, -c, "mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 7000 -h /tmp/www"]
        web:
          type: service
          executor: docker
          resources: {cpu: 0.2, ram: 32MiB}
          execution: {image: <busybox>, cmd: [sleep, "3600"]}
      nodes:
        data: {allocations: [db]}
        front: {allocations: [web], peer: <peer of us-1>}
      """
    And "web" runs `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 db.internal 7000 | tail -n 1`
    When the environment's node running "db" is killed
    Then within 45 seconds the operator's deployment runs "db" again on another node
    And within 15 seconds "web" runs `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 db.internal 7000 | tail -n 1` with an output other than the last
    When "web" resolves "db.internal"
    Then it gets the subnet address of "db"

@pending
Feature: IP over libp2p
  The allocations of a deployment share a private subnet carried over
  libp2p: each gets an IP address, and names under .internal resolve to
  them, whichever providers they run on.

  Scenario: Two allocations on different providers reach each other by IP
    Given bob and carol each offer 1 CPU to alice's deployments
    And a deployment of a server on bob and a client on carol sharing a subnet
    When the client connects to the server's subnet address
    Then the client receives the server's answer

  Scenario: An allocation reaches another by its .internal name
    Given a deployment of the allocations "web" and "db" sharing a subnet
    When "web" resolves "db.internal"
    Then it gets the subnet address of "db"

  Scenario: Deployments are isolated from each other
    Given two deployments, each with its own subnet
    When an allocation of the first connects to an address of the second
    Then the connection fails

  Scenario: The subnet is removed when the deployment ends
    Given a deployment with a subnet
    When alice shuts the deployment down
    Then no provider keeps its TUN interface or routes

  Scenario: A published port is reachable from the provider's host
    Given a service publishing port 8080 of its allocation
    When a program on the provider connects to the published port
    Then it reaches the service

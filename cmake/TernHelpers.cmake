# Small helpers so that each leaf CMakeLists.txt stays a few lines.

# tern_unit_test(name SOURCES a_test.c LIBS lib...) : one ctest labelled "unit".
function(tern_unit_test name)
	cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS" ${ARGN})
	add_executable(${name} ${T_SOURCES})
	target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests)
	target_compile_definitions(${name} PRIVATE TN_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
	target_link_libraries(${name} PRIVATE ${T_LIBS})
	add_test(NAME ${name} COMMAND ${name})
	set(labels unit ${T_LABELS})
	set_tests_properties(${name} PROPERTIES LABELS "${labels}" TIMEOUT 120)
endfunction()

# tern_service(name LIB core_library) : the service binary tern-<name> from main.c.
function(tern_service name)
	cmake_parse_arguments(S "" "LIB" "" ${ARGN})
	add_executable(tern-${name} main.c)
	target_link_libraries(tern-${name} PRIVATE ${S_LIB})
	set_target_properties(tern-${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
	install(TARGETS tern-${name} RUNTIME DESTINATION bin)
endfunction()

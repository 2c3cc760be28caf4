# install.cmake — what `cmake --install` puts under the prefix:
#   lib/       libseslm.so.X (the core) and libseslm-<layer>.so.X per layer, their .a, libseslm-cuda.so.X
#   include/   seslm.h (the core) and seslm/*.h (the public headers of every layer)
#   lib/pkgconfig/seslm.pc, seslm-<layer>.pc;  lib/cmake/seslm/ (find_package(seslm): seslm::core, ...)
#   bin/seslm, share/man/man1/seslm.1, share/bash-completion/completions/seslm
set(SESLM_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/seslm)

set(SESLM_SHARED_TARGETS "")
set(SESLM_STATIC_TARGETS "")
foreach(layer ${SESLM_LAYERS})
  list(APPEND SESLM_SHARED_TARGETS seslm_${layer})
  list(APPEND SESLM_STATIC_TARGETS seslm_${layer}_static)
endforeach()
if(SESLM_HAVE_CUDA)
  list(APPEND SESLM_SHARED_TARGETS seslm_cuda)
endif()
install(TARGETS ${SESLM_SHARED_TARGETS} EXPORT seslmTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT dev
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS ${SESLM_STATIC_TARGETS} ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
install(TARGETS seslm_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)

# public headers: the core's seslm.h, and every layer's include/seslm/
install(FILES ${PROJECT_SOURCE_DIR}/runtime/include/seslm.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)
foreach(dir runtime/include/seslm runtime/telemetry/hdf5/include/seslm runtime/objstore/include/seslm runtime/assist/include/seslm
            runtime/serve/include/seslm pipeline/include/seslm pipeline/registry/include/seslm)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/seslm COMPONENT dev
          FILES_MATCHING PATTERN "*.h")
endforeach()

# pkg-config: seslm.pc (the core) and one per layer; Requires / Requires.private name the layers below and
# the third-party libraries (Libs.private: what `pkg-config --static` needs for the .a files)
# relocatable: the prefix is found from the .pc file's own folder (cmake --install --prefix DIR works)
file(RELATIVE_PATH SESLM_PC_TO_PREFIX ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" SESLM_PC_TO_PREFIX "${SESLM_PC_TO_PREFIX}")
set(SESLM_PC_OPENBLAS "")
if(OPENBLAS_LIB AND OPENBLAS_INCLUDE)
  get_filename_component(openblas_dir ${OPENBLAS_LIB} DIRECTORY)
  set(SESLM_PC_OPENBLAS "-L${openblas_dir} -lopenblas")
endif()
set(SESLM_PC_LAPACKE "")
if(LAPACKE_INCLUDE AND LAPACKE_LIB)
  set(SESLM_PC_LAPACKE "-llapacke")
endif()
set(SESLM_PC_OPENMP "")
if(OpenMP_C_FOUND)
  set(SESLM_PC_OPENMP "${OpenMP_C_FLAGS}")
endif()
set(SESLM_PC_HDF5 "")
if(SESLM_HDF5_FOUND)
  set(SESLM_PC_HDF5 "${SESLM_HDF5_MODULE_NAME}")
endif()
foreach(pc seslm seslm-telemetry-hdf5 seslm-objstore seslm-assist seslm-serve seslm-evolve seslm-registry)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/pkgconfig/${pc}.pc.in ${PROJECT_BINARY_DIR}/pkgconfig/${pc}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/pkgconfig/${pc}.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)
endforeach()

# CMake package: find_package(seslm) gives seslm::core, seslm::objstore, seslm::assist, seslm::serve, seslm::evolve,
# seslm::registry, seslm::telemetry_hdf5 (the shared libraries; the static ones through pkg-config --static)
include(CMakePackageConfigHelpers)
install(EXPORT seslmTargets NAMESPACE seslm:: DESTINATION ${SESLM_CMAKE_DIR} COMPONENT dev)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/seslmConfig.cmake.in ${PROJECT_BINARY_DIR}/seslmConfig.cmake
                              INSTALL_DESTINATION ${SESLM_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/seslmConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/seslmConfig.cmake ${PROJECT_BINARY_DIR}/seslmConfigVersion.cmake
        DESTINATION ${SESLM_CMAKE_DIR} COMPONENT dev)

# the man page and bash completion of the program
# (the page is generated from the program's --help texts, docs/man/gen_man.py, so the two never disagree)
find_package(Python3 COMPONENTS Interpreter REQUIRED)
add_custom_command(OUTPUT ${PROJECT_BINARY_DIR}/seslm.1
                   COMMAND Python3::Interpreter ${PROJECT_SOURCE_DIR}/docs/man/gen_man.py $<TARGET_FILE:seslm_cli>
                           ${PROJECT_VERSION} > ${PROJECT_BINARY_DIR}/seslm.1
                   DEPENDS seslm_cli ${PROJECT_SOURCE_DIR}/docs/man/gen_man.py VERBATIM
                   COMMENT "man page seslm.1 from seslm --help")
add_custom_target(seslm_man ALL DEPENDS ${PROJECT_BINARY_DIR}/seslm.1)
install(FILES ${PROJECT_BINARY_DIR}/seslm.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT runtime)
install(FILES ${PROJECT_SOURCE_DIR}/runtime/cli/seslm.bash-completion DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
        RENAME seslm COMPONENT runtime)
